package config

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// envPrefix starts every environment variable that sets a config key.
const envPrefix = "SNAPWARDEN_"

// notKeys are SNAPWARDEN_ variables that are not config keys: the CLI's
// config path, the benchmarks' fleet size, the crash tests' failpoint and the
// tests' PostgreSQL server.
var notKeys = map[string]bool{"SNAPWARDEN_CONFIG": true, "SNAPWARDEN_BENCH_VMS": true, "SNAPWARDEN_FAILPOINT": true,
	"SNAPWARDEN_TEST_POSTGRES": true}

// envSetting is one SNAPWARDEN_ variable resolved to the key it sets.
type envSetting struct {
	Var   string   // SNAPWARDEN_VCENTERS_0_PASSWORD
	Key   string   // vcenters[0].password
	path  []string // vcenters, 0, password
	value string
}

// applyEnv lays every SNAPWARDEN_ variable over the file's settings. A list
// entry is addressed by its index (SNAPWARDEN_VCENTERS_0_PASSWORD) and must
// exist in the file; a list of values takes a comma-separated string. A
// variable that names no key is a problem, not silently ignored. It returns
// which key each variable set, so later problems can name the variable.
func applyEnv(settings map[string]any, environ []string) ([]envSetting, []string) {
	known := knownKeys(configType)
	var set []envSetting
	var probs []string
	sort.Strings(environ)
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) || notKeys[name] {
			continue
		}
		tokens := strings.Split(strings.ToLower(strings.TrimPrefix(name, envPrefix)), "_")
		path, ok := resolveEnv(tokens, known, settings)
		if !ok {
			probs = append(probs, fmt.Sprintf("environment variable %s names no config key (list entries are addressed by index and must exist in the file, such as SNAPWARDEN_VCENTERS_0_PASSWORD)", name))
			continue
		}
		if value == "" { // as before: an empty variable is unset
			continue
		}
		if err := setPath(settings, path, value); err != nil {
			probs = append(probs, fmt.Sprintf("environment variable %s: %v", name, err))
			continue
		}
		set = append(set, envSetting{Var: name, Key: keyString(path), path: path, value: value})
	}
	return set, probs
}

// resolveEnv matches the lowercase tokens of a variable name to a key path.
// Key names hold underscores themselves (password_file), so it tries the
// longest name first and backtracks; a list of structs takes an index.
func resolveEnv(tokens []string, known keyTree, node any) ([]string, bool) {
	for n := len(tokens); n >= 1; n-- {
		name := strings.Join(tokens[:n], "_")
		sub, ok := known[name]
		if !ok {
			continue
		}
		rest := tokens[n:]
		var child any
		if m, ok := node.(map[string]any); ok {
			child = m[name]
		}
		if elem, isList := sub["[]"]; isList {
			if len(rest) < 2 {
				continue
			}
			i, err := strconv.Atoi(rest[0])
			list, _ := child.([]any)
			if err != nil || i < 0 || i >= len(list) {
				continue
			}
			if p, ok := resolveEnv(rest[1:], elem, list[i]); ok {
				return append([]string{name, rest[0]}, p...), true
			}
			continue
		}
		if len(rest) == 0 {
			if sub == nil {
				return []string{name}, true
			}
			continue // a section, not a key
		}
		if sub == nil {
			continue
		}
		if p, ok := resolveEnv(rest, sub, child); ok {
			return append([]string{name}, p...), true
		}
	}
	return nil, false
}

// setPath sets the value at path, creating the maps on the way.
func setPath(node map[string]any, path []string, value string) error {
	for i := 0; i < len(path)-1; i++ {
		next := node[path[i]]
		if list, ok := next.([]any); ok {
			idx, _ := strconv.Atoi(path[i+1]) // resolveEnv checked it
			m, ok := list[idx].(map[string]any)
			if !ok {
				return fmt.Errorf("%s[%d] in the file is not a mapping", path[i], idx)
			}
			node, i = m, i+1
			continue
		}
		m, ok := next.(map[string]any)
		if !ok {
			if next != nil {
				return fmt.Errorf("%s in the file is not a mapping", keyString(path[:i+1]))
			}
			m = map[string]any{}
			node[path[i]] = m
		}
		node = m
	}
	node[path[len(path)-1]] = value
	return nil
}

// keyString writes a path as problems name keys: vcenters[0].password.
func keyString(path []string) string {
	var b strings.Builder
	for _, p := range path {
		if _, err := strconv.Atoi(p); err == nil {
			b.WriteString("[" + p + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

// blameEnv names the variable in each problem about a key it set: the file
// may be fine and the value wrong in the service's environment.
func blameEnv(probs []string, set []envSetting) []string {
	for _, s := range set {
		re := regexp.MustCompile(`(^|[\s"])` + regexp.QuoteMeta(s.Key) + `($|[\s":.\[])`)
		for i, p := range probs {
			if re.MatchString(p) {
				probs[i] = p + " (set by environment variable " + s.Var + ")"
			}
		}
	}
	return probs
}
