package main

import (
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/snapwarden/snapwarden/internal/mailsink"
	"github.com/snapwarden/snapwarden/internal/plan"
	"github.com/snapwarden/snapwarden/internal/selfservice"
)

// mailLink is one self-service link found in a delivered message.
type mailLink struct {
	File, VM, Snapshot string
	Action             plan.RequestAction
	URL                string
}

var (
	vmLineRE   = regexp.MustCompile(`^\s*\d+\. VM:\s+(.+)$`)
	snapLineRE = regexp.MustCompile(`^\s+Snapshot:\s+(.+?)(?: \(reminder:.*\))?$`)
	linkLineRE = regexp.MustCompile(`^\s+[^:]+: (https?://\S+` + regexp.QuoteMeta(selfservice.Prefix) + `(\S+))$`)
)

// runLinks is `snapwarden-sim links`: it lists the self-service links of
// delivered .eml files, each checked against the key file so that its
// action is the one signed, not guessed from the label. With --vm and
// --action it prints only the URL of the newest such link (for scripts).
func runLinks(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("snapwarden-sim links", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyFile := fs.String("key-file", "", "the self_service.key_file the links were signed with (required)")
	vm := fs.String("vm", "", "only the links of this VM")
	action := fs.String("action", "", "only this action: extend, commit or not-mine")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: snapwarden-sim links --key-file FILE [--vm NAME --action ACTION] MESSAGE.eml...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErr(err)
	}
	if *keyFile == "" || fs.NArg() == 0 {
		return usageErr(errors.New("links: --key-file and at least one .eml file are required"))
	}
	if *action != "" && !plan.RequestAction(*action).Valid() {
		return usageErr(fmt.Errorf("links: --action %q: want extend, commit or not-mine", *action))
	}
	keys, err := selfservice.LoadKeys(*keyFile)
	if err != nil {
		return usageErr(err)
	}
	var found []mailLink
	for _, name := range fs.Args() {
		raw, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		ls, err := messageLinks(name, raw, keys)
		if err != nil {
			return err
		}
		for _, l := range ls {
			if (*vm == "" || l.VM == *vm) && (*action == "" || string(l.Action) == *action) {
				found = append(found, l)
			}
		}
	}
	if *vm != "" && *action != "" {
		if len(found) == 0 {
			return fmt.Errorf("links: no %s link for VM %s in %s", *action, *vm, strings.Join(fs.Args(), " "))
		}
		_, err := fmt.Fprintln(stdout, found[len(found)-1].URL)
		return err
	}
	for _, l := range found {
		if _, err := fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\t%s\n", l.File, l.VM, l.Snapshot, l.Action, l.URL); err != nil {
			return err
		}
	}
	return nil
}

// messageLinks reads the links of one message's text part, under the VM and
// snapshot of the entry they follow. A link whose token does not verify is
// an error: the message was not signed with this key.
func messageLinks(name string, raw []byte, keys *selfservice.Keys) ([]mailLink, error) {
	text := mailsink.Part(raw, "text/plain")
	if text == nil {
		return nil, fmt.Errorf("%s: no text/plain part", name)
	}
	var (
		out          []mailLink
		vm, snapshot string
	)
	for _, line := range strings.Split(strings.ReplaceAll(string(text), "\r\n", "\n"), "\n") {
		if m := vmLineRE.FindStringSubmatch(line); m != nil {
			vm, snapshot = m[1], ""
		} else if m := snapLineRE.FindStringSubmatch(line); m != nil {
			snapshot = m[1]
		} else if m := linkLineRE.FindStringSubmatch(line); m != nil {
			// Verify checks the MAC before the expiry: an expired link
			// still names its action.
			c, err := keys.Verify(m[2], time.Now())
			if err != nil && !errors.Is(err, selfservice.ErrExpired) {
				return nil, fmt.Errorf("%s: link for VM %s: %w", name, vm, err)
			}
			out = append(out, mailLink{File: name, VM: vm, Snapshot: snapshot, Action: c.Action, URL: m[1]})
		}
	}
	return out, nil
}

var (
	titleRE  = regexp.MustCompile(`(?s)<h1>(.*?)</h1>`)
	paraRE   = regexp.MustCompile(`(?s)<p>(.*?)</p>`)
	buttonRE = regexp.MustCompile(`(?s)<button[^>]*>(.*?)</button>`)
)

// runOpen is `snapwarden-sim open [--post] URL`: what a customer's browser
// does with a link (GET shows the page, --post presses its button), printed
// as the page's gist: status, title, text and button.
func runOpen(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("snapwarden-sim open", flag.ContinueOnError)
	fs.SetOutput(stderr)
	post := fs.Bool("post", false, "press the page's button (POST its form) instead of only looking")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: snapwarden-sim open [--post] URL")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageErr(err)
	}
	if fs.NArg() != 1 {
		return usageErr(errors.New("open: give one URL"))
	}
	u, err := url.Parse(fs.Arg(0))
	if err != nil || u.Hostname() != "127.0.0.1" {
		return usageErr(fmt.Errorf("open: %q is not a link on 127.0.0.1: the demo stays on loopback", fs.Arg(0)))
	}
	method := http.MethodGet
	if *post {
		method = http.MethodPost
	}
	req, err := http.NewRequest(method, u.String(), nil)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	if *post {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("open: %s %s: %w", method, u.Redacted(), err)
	}
	fmt.Fprintf(stdout, "%s %s -> %s\n", method, u, resp.Status)
	if m := titleRE.FindSubmatch(body); m != nil {
		fmt.Fprintf(stdout, "  page: %s\n", html.UnescapeString(string(m[1])))
	}
	for _, m := range paraRE.FindAllSubmatch(body, -1) {
		fmt.Fprintf(stdout, "        %s\n", html.UnescapeString(string(m[1])))
	}
	if m := buttonRE.FindSubmatch(body); m != nil {
		fmt.Fprintf(stdout, "  button: [%s]\n", html.UnescapeString(string(m[1])))
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("open: %s %s: %s", method, u, resp.Status)
	}
	return nil
}
