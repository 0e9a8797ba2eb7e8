package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"github.com/snapwarden/snapwarden/internal/policy"
)

// Error is a config problem; its message starts with the file name. The CLI
// exits 2 on it.
type Error struct {
	File     string
	Problems []string
}

// Error lists the problems, each on its own line after the file name.
func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return e.File + ": " + e.Problems[0]
	}
	return e.File + ":\n  " + strings.Join(e.Problems, "\n  ")
}

// defaults are the values of every scalar key the file may omit
// (docs/configuration.md lists them).
func defaults() map[string]any {
	p := policy.Default()
	return map[string]any{
		"schedule": "@every 1h", "state": "/var/lib/snapwarden/ledger.db", "listen": "127.0.0.1:9469",
		"log.level": "info", "log.format": "auto", "collect.parallel": 4, "collect.timeout": 15 * time.Minute,
		"policy.warn_after": p.WarnAfter, "policy.deadline": p.Deadline, "policy.reminder_every": p.ReminderEvery,
		"policy.escalate_every": p.EscalateEvery, "policy.action": string(p.Action), "policy.grace": p.Grace,
		"policy.max_keep": p.MaxKeep, "policy.exempt_tag": p.ExemptTag, "policy.managed_patterns": p.ManagedPatterns,
		"policy.platform_patterns":   p.PlatformPatterns,
		"policy.managed_stale_after": p.ManagedStaleAfter, "policy.max_depth": p.MaxDepth, "policy.heads_up": p.HeadsUp,
		"problems.scan_every": 24 * time.Hour,
		"support.email":       "", "support.webhook": "",
		"smtp.host": "localhost", "smtp.port": 0, "smtp.username": "", "smtp.password": "", "smtp.password_file": "",
		"smtp.from": "snapwarden <noreply@provider.example>", "smtp.tls": "starttls",
		"templates":        "",
		"enforcement.mode": "dry-run", "enforcement.max_per_run": 10, "enforcement.max_concurrent": 2,
		"enforcement.min_free_percent": 10.0, "enforcement.max_attempts": 3, "enforcement.task_timeout": 24 * time.Hour,
		"console.users_file": "", "console.trusted_header": "", "console.trusted_proxies": []string{},
		"enforcement.min_notice":               24 * time.Hour,
		"enforcement.fix_consolidation_needed": false,
		"self_service.public_url":              "", "self_service.listen": "0.0.0.0:9470", "self_service.key_file": "",
		"self_service.link_ttl": 168 * time.Hour, "self_service.extend_by": 24 * time.Hour, "self_service.max_extends": 2,
		"self_service.commit": true,
	}
}

var configType = reflect.TypeOf(Config{})

// Load reads, merges and validates the config file and SNAPWARDEN_* env.
// A problem caused by a variable names the variable.
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Problems: []string{fmt.Sprintf("cannot read the config file: %v", err)}}
	}
	v := viper.New()
	v.SetConfigType("yaml")
	for k, val := range defaults() {
		v.SetDefault(k, val)
	}
	if err := v.ReadConfig(strings.NewReader(string(raw))); err != nil {
		return nil, &Error{File: path, Problems: []string{fmt.Sprintf("not valid YAML: %v", unwrapYAML(err))}}
	}
	settings := v.AllSettings()
	if probs := unknownKeys(settings); len(probs) > 0 {
		return nil, &Error{File: path, Problems: probs}
	}
	env, probs := applyEnv(settings, os.Environ())
	if len(probs) > 0 {
		return nil, &Error{File: path, Problems: probs}
	}
	cfg := &Config{File: path}
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook: decodeHook(), Result: cfg, WeaklyTypedInput: true,
	})
	if err == nil {
		err = dec.Decode(settings)
	}
	if err != nil {
		return nil, &Error{File: path, Problems: blameEnv([]string{typeProblem(err)}, env)}
	}
	e := &Error{File: path}
	cfg.SMTP.defaultPort()
	cfg.resolvePaths(filepath.Dir(path))
	cfg.readSecrets(e)
	cfg.mergeCustomerPolicies(e)
	cfg.validate(e)
	if len(e.Problems) > 0 {
		e.Problems = blameEnv(e.Problems, env)
		return nil, e
	}
	return cfg, nil
}

func unwrapYAML(err error) error {
	var pe viper.ConfigParseError
	if errors.As(err, &pe) {
		if u := errors.Unwrap(pe); u != nil {
			return u
		}
	}
	return err
}

// decodeHook turns strings into durations (also "14d"), refuses bare numbers
// for durations (48 would be 48 nanoseconds), and splits comma lists from env.
func decodeHook() mapstructure.DecodeHookFunc {
	durType := reflect.TypeOf(time.Duration(0))
	return mapstructure.ComposeDecodeHookFunc(
		func(from, to reflect.Type, data any) (any, error) {
			if to != durType {
				return data, nil
			}
			switch d := data.(type) {
			case string:
				return ParseDuration(d)
			case time.Duration:
				return d, nil
			default:
				return nil, fmt.Errorf("%v is not a duration: write it with a unit, such as 48h, 90m or 14d", data)
			}
		},
		mapstructure.StringToSliceHookFunc(","),
	)
}

var daysRE = regexp.MustCompile(`^(\d+)d(.*)$`)

// ParseDuration reads a duration as the config writes them: Go durations plus
// whole days ("14d", "1d12h").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var days time.Duration
	if m := daysRE.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		days, s = time.Duration(n)*24*time.Hour, m[2]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: write it such as 48h, 90m or 14d", s)
	}
	return days + d, nil
}

// typeProblem reduces mapstructure's error to the key and what was wrong.
func typeProblem(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "decoding failed due to the following error(s):\n\n")
	return strings.ReplaceAll(msg, "'", "")
}

func (c *Config) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	// state may name a PostgreSQL database instead of a file.
	if !strings.HasPrefix(c.State, "postgres://") && !strings.HasPrefix(c.State, "postgresql://") {
		abs(&c.State)
	}
	abs(&c.Templates)
	abs(&c.Console.UsersFile)
	secret := func(p *string) {
		if !strings.HasPrefix(*p, credentialPrefix) {
			abs(p)
		}
	}
	secret(&c.SMTP.PasswordFile)
	secret(&c.SelfService.KeyFile)
	for i := range c.VCenters {
		secret(&c.VCenters[i].PasswordFile)
		abs(&c.VCenters[i].CAFile)
	}
}

// credentialPrefix marks a password_file named in $CREDENTIALS_DIRECTORY:
// systemd's LoadCredential= copies the file there for the service alone, so
// the password itself can stay readable by root only.
const credentialPrefix = "credential:"

// credentialFile resolves "credential:NAME" to $CREDENTIALS_DIRECTORY/NAME;
// other values are returned unchanged.
func credentialFile(file string) (string, error) {
	name, ok := strings.CutPrefix(file, credentialPrefix)
	if !ok {
		return file, nil
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
		return "", fmt.Errorf("%q is not a credential name (a file name, such as credential:snapwarden_vc-east.password)", name)
	}
	dir := os.Getenv("CREDENTIALS_DIRECTORY")
	if dir == "" {
		return "", fmt.Errorf("%s needs $CREDENTIALS_DIRECTORY, which systemd sets for a unit with LoadCredential= (run it under the unit, or name a file)", file)
	}
	return filepath.Join(dir, name), nil
}

// readSecrets loads password_file values into their Secrets.
func (c *Config) readSecrets(e *Error) {
	read := func(key, file string, into *Secret) {
		if file == "" {
			return
		}
		if *into != "" {
			e.add("%s_file and %s are both set: keep one (password_file is preferred)", key, key)
			return
		}
		file, err := credentialFile(file)
		if err != nil {
			e.add("%s_file: %v", key, err)
			return
		}
		b, err := os.ReadFile(file)
		if err != nil {
			e.add("%s_file: cannot read %s: %v (create it with the password, readable only by snapwarden)", key, file, err)
			return
		}
		*into = Secret(strings.TrimRight(string(b), "\r\n"))
		if *into == "" {
			e.add("%s_file: %s is empty", key, file)
		}
	}
	for i := range c.VCenters {
		read(fmt.Sprintf("vcenters[%d].password", i), c.VCenters[i].PasswordFile, &c.VCenters[i].Password)
	}
	read("smtp.password", c.SMTP.PasswordFile, &c.SMTP.Password)
	// The link key is read by selfservice.LoadKeys, which checks its
	// permissions; only its name is resolved here.
	if f, err := credentialFile(c.SelfService.KeyFile); err != nil {
		e.add("self_service.key_file: %v", err)
	} else {
		c.SelfService.KeyFile = f
	}
}

// mergeCustomerPolicies lays each customer's override over the default policy.
func (c *Config) mergeCustomerPolicies(e *Error) {
	for i := range c.Customers {
		cu := &c.Customers[i]
		p := c.Policy
		p.ManagedPatterns = append([]string(nil), c.Policy.ManagedPatterns...)
		if _, ok := cu.Override["managed_patterns"]; ok {
			p.ManagedPatterns = nil
		}
		p.PlatformPatterns = append([]string(nil), c.Policy.PlatformPatterns...)
		if _, ok := cu.Override["platform_patterns"]; ok {
			p.PlatformPatterns = nil
		}
		dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
			DecodeHook: decodeHook(), Result: &p, ErrorUnused: true, WeaklyTypedInput: true,
		})
		if err == nil {
			err = dec.Decode(cu.Override)
		}
		if err != nil {
			e.add("customers[%d].policy: %s", i, typeProblem(err))
			continue
		}
		cu.Policy = p
	}
}

func (e *Error) add(format string, args ...any) {
	e.Problems = append(e.Problems, fmt.Sprintf(format, args...))
}

// Customer returns the directory entry for id.
func (c *Config) Customer(id string) (Customer, bool) {
	if id == "" {
		return Customer{}, false
	}
	for _, cu := range c.Customers {
		if cu.ID == id {
			return cu, true
		}
	}
	return Customer{}, false
}

// PolicyFor returns the policy of a customer: its merged policy when it is in
// the directory, else the default policy.
func (c *Config) PolicyFor(id string) policy.Policy {
	if cu, ok := c.Customer(id); ok {
		return cu.Policy
	}
	return c.Policy
}

// keyTree is the set of known keys, nested; a "[]" child describes each
// element of a list.
type keyTree map[string]keyTree

func knownKeys(t reflect.Type) keyTree {
	tree := keyTree{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("mapstructure")
		if name == "" || name == "-" {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Time{}):
			tree[name] = knownKeys(ft)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			tree[name] = keyTree{"[]": knownKeys(ft.Elem())}
		case name == "policy": // a customer's override: the policy's keys
			tree[name] = knownKeys(reflect.TypeOf(policy.Policy{}))
		default:
			tree[name] = nil
		}
	}
	return tree
}

// unknownKeys lists every key of the file that snapwarden does not know,
// with the closest known key as a hint.
func unknownKeys(settings map[string]any) []string {
	var probs []string
	var walk func(prefix string, m map[string]any, known keyTree)
	walk = func(prefix string, m map[string]any, known keyTree) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			sub, ok := known[k]
			full := prefix + k
			if !ok {
				msg := fmt.Sprintf("unknown key %q", full)
				if s := closest(k, known); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", prefix+s)
				}
				probs = append(probs, msg)
				continue
			}
			switch val := m[k].(type) {
			case map[string]any:
				if sub != nil {
					walk(full+".", val, sub)
				}
			case []any:
				if elem, ok := sub["[]"]; ok {
					for i, item := range val {
						if im, ok := item.(map[string]any); ok {
							walk(fmt.Sprintf("%s[%d].", full, i), im, elem)
						}
					}
				}
			}
		}
	}
	walk("", settings, knownKeys(configType))
	return probs
}

// closest suggests a known key within edit distance 2.
func closest(k string, known keyTree) string {
	best, bestD := "", 3
	for cand := range known {
		if d := distance(k, cand); d < bestD {
			best, bestD = cand, d
		}
	}
	return best
}

func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
