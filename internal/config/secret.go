package config

import "fmt"

// redacted is what a Secret prints as.
const redacted = "<secret>"

// Reveal returns the secret's value, for the one place that needs it (a login).
func (s Secret) Reveal() string { return string(s) }

func (s Secret) mask() string {
	if s == "" {
		return ""
	}
	return redacted
}

// String prints "<secret>" (or "" when unset), never the value.
func (s Secret) String() string { return s.mask() }

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.mask()) }

// Format covers every fmt verb, including %x and %q, which bypass String.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", s.mask())
		return
	}
	fmt.Fprint(f, s.mask())
}

// MarshalText covers JSON, YAML and zerolog's Interface.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.mask()), nil }
