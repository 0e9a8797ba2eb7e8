package packaging

import (
	"os/exec"
	"strings"
	"testing"
)

func TestDebianVersion(t *testing.T) {
	for _, tt := range []struct {
		describe string
		commits  int
		want     string
	}{
		{"v1.2.3", 0, "1.2.3"},
		{"1.2.3", 0, "1.2.3"},
		{"v1.2.3-dirty", 0, "1.2.3+dirty"},
		{"v1.2.3-4-gabc1234", 0, "1.2.3+git4.abc1234"},
		{"v1.2.3-4-gabc1234-dirty", 0, "1.2.3+git4.abc1234.dirty"},
		{"v1.3.0-rc1", 0, "1.3.0~rc1"},
		{"v1.3.0-rc.1-2-gabc1234", 0, "1.3.0~rc.1+git2.abc1234"},
		{"a5d129d", 412, "0.0.0+git412.a5d129d"},
		{"a5d129d-dirty\n", 412, "0.0.0+git412.a5d129d.dirty"},
	} {
		got, err := DebianVersion(tt.describe, tt.commits)
		if err != nil || got != tt.want {
			t.Errorf("DebianVersion(%q, %d) = %q, %v; want %q", tt.describe, tt.commits, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "release-one", "v1.2.3 beta", "v1.2_3"} {
		if got, err := DebianVersion(bad, 1); err == nil {
			t.Errorf("DebianVersion(%q) = %q, want an error", bad, got)
		}
	}
}

// The versions must sort as the builds were made, by dpkg's own rules.
func TestDebianVersionOrder(t *testing.T) {
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		t.Skip("dpkg not installed (apt-get install dpkg): cannot compare versions")
	}
	order := []string{"0.0.0+git9.a5d129d", "1.3.0~rc1", "1.3.0~rc1+git2.abc1234", "1.3.0", "1.3.0+dirty", "1.3.0+git1.abc1234", "1.3.0+git1.abc1234.dirty", "1.3.0+git2.0bc1234"}
	for i := 1; i < len(order); i++ {
		out, err := exec.Command(dpkg, "--compare-versions", order[i-1], "lt", order[i]).CombinedOutput()
		if err != nil {
			t.Errorf("dpkg: %s is not before %s (%v %s)", order[i-1], order[i], err, strings.TrimSpace(string(out)))
		}
	}
}
