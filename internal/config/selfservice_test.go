package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSelfServiceDefaultsAndValidation(t *testing.T) {
	c, err := Load(write(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	ss := c.SelfService
	if ss.Enabled() || ss.Listen != "0.0.0.0:9470" || ss.LinkTTL != 168*time.Hour || ss.ExtendBy != 24*time.Hour ||
		ss.MaxExtends != 2 || !ss.Commit {
		t.Fatalf("self_service defaults: %+v", ss)
	}
	c, err = Load(write(t, minimal+"self_service: {public_url: https://snapshots.provider.example, key_file: link.key, commit: false}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.SelfService.Enabled() || c.SelfService.Commit || c.SelfService.KeyFile != filepath.Join(filepath.Dir(c.File), "link.key") {
		t.Fatalf("self_service: %+v", c.SelfService)
	}
	t.Setenv("CREDENTIALS_DIRECTORY", "/run/credentials/snapwarden.service")
	c, err = Load(write(t, minimal+"self_service: {public_url: https://s.example, key_file: 'credential:snapwarden_link.key'}\n"))
	if err != nil || c.SelfService.KeyFile != "/run/credentials/snapwarden.service/snapwarden_link.key" {
		t.Fatalf("key_file credential: %v %q", err, c.SelfService.KeyFile)
	}
	for body, want := range map[string]string{
		"self_service: {public_url: https://s.example}\n":                                        "self_service.key_file is required",
		"self_service: {public_url: 'ftp://s.example', key_file: k}\n":                           "self_service.public_url",
		"self_service: {public_url: https://s.example, key_file: k, listen: '127.0.0.1:9469'}\n": "must differ from listen",
		"self_service: {public_url: https://s.example, key_file: k, listen: nope}\n":             "self_service.listen",
		"self_service: {public_url: https://s.example, key_file: k, link_ttl: 0s}\n":             "link_ttl",
		"self_service: {public_url: https://s.example, key_file: k, max_extends: -1}\n":          "max_extends",
	} {
		_, err := Load(write(t, minimal+body))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", strings.TrimSpace(body), err, want)
		}
	}
}
