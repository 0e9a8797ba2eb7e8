package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A password_file of "credential:NAME" is read from $CREDENTIALS_DIRECTORY,
// where systemd's LoadCredential= puts it, not from the config's folder.
func TestPasswordFileFromCredential(t *testing.T) {
	creds := t.TempDir()
	if err := os.WriteFile(filepath.Join(creds, "snapwarden_vc1.password"), []byte("from-systemd\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(creds, "snapwarden_smtp.password"), []byte("smtp-secret"), 0o400); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CREDENTIALS_DIRECTORY", creds)
	body := strings.Replace(minimal, "password_file: vc1.password", "password_file: credential:snapwarden_vc1.password", 1) +
		"smtp: {host: mail.example, username: u, password_file: 'credential:snapwarden_smtp.password'}\n"
	c, err := Load(write(t, body))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.VCenters[0].Password.Reveal(); got != "from-systemd" {
		t.Fatalf("vCenter password = %q, want the credential's content", got)
	}
	if got := c.SMTP.Password.Reveal(); got != "smtp-secret" {
		t.Fatalf("SMTP password = %q, want the credential's content", got)
	}
	if c.VCenters[0].PasswordFile != "credential:snapwarden_vc1.password" {
		t.Fatalf("a credential name was resolved against the config's folder: %s", c.VCenters[0].PasswordFile)
	}
}

func TestPasswordFileCredentialErrors(t *testing.T) {
	creds := t.TempDir()
	for _, tt := range []struct {
		name, dir, file, want string
	}{
		{"outside systemd", "", "credential:vc1.password",
			"vcenters[0].password_file: credential:vc1.password needs $CREDENTIALS_DIRECTORY"},
		{"missing credential", creds, "credential:vc1.password",
			"vcenters[0].password_file: cannot read " + filepath.Join(creds, "vc1.password")},
		{"path, not a name", creds, "credential:../vc1.password", `"../vc1.password" is not a credential name`},
		{"empty name", creds, "credential:", `"" is not a credential name`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CREDENTIALS_DIRECTORY", tt.dir)
			_, err := Load(write(t, strings.Replace(minimal, "vc1.password", tt.file, 1)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
