package report

import "testing"

// Names wrap after separators only, and stay escaped and clean.
func TestBreakable(t *testing.T) {
	for in, want := range map[string]string{
		"acme-app01":             "acme-<wbr>app01",
		"web01":                  "web01",
		"/DC0/vm/Customers/acme": "/<wbr>DC0/<wbr>vm/<wbr>Customers/<wbr>acme",
		"db_01.prod":             "db_<wbr>01.<wbr>prod",
		"<b>x</b>":               "&lt;b&gt;x&lt;/<wbr>b&gt;",
		"a\u202eb\nc":            "ab c",
		"alice@vsphere.local":    "alice@<wbr>vsphere.<wbr>local",
		"trailing-":              "trailing-<wbr>",
		`quote"&amp`:             "quote&#34;&amp;amp",
	} {
		if got := string(Breakable(in)); got != want {
			t.Errorf("Breakable(%q) = %q, want %q", in, got, want)
		}
	}
}
