package packaging

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	describedRE = regexp.MustCompile(`^(.+)-(\d+)-g([0-9a-f]{4,40})$`)
	hashRE      = regexp.MustCompile(`^[0-9a-f]{4,40}$`)
	debVerRE    = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~]*$`)
)

// DebianVersion turns `git describe --tags --always --dirty` into a Debian
// version that sorts the way the builds were made: v1.2.3 is 1.2.3, a build 4
// commits later is 1.2.3+git4.abc1234 (after 1.2.3), a pre-release tag
// v1.3.0-rc1 is 1.3.0~rc1 (before 1.3.0), a tree with uncommitted changes
// gets "dirty" appended. Without any tag git prints only the hash; commits
// (`git rev-list --count HEAD`) then orders the builds: 0.0.0+git<commits>.<hash>.
func DebianVersion(describe string, commits int) (string, error) {
	d, dirty := strings.CutSuffix(strings.TrimSpace(describe), "-dirty")
	tag, ahead, hash := d, "", ""
	switch m := describedRE.FindStringSubmatch(d); {
	case m != nil:
		tag, ahead, hash = m[1], m[2], m[3]
	case hashRE.MatchString(d):
		tag, ahead, hash = "0.0.0", fmt.Sprint(commits), d
	}
	v := strings.TrimPrefix(tag, "v")
	// A semver pre-release (1.3.0-rc1) sorts before its release in Debian only with "~".
	v = strings.Replace(v, "-", "~", 1)
	if hash != "" {
		v += "+git" + ahead + "." + hash
	}
	if dirty {
		if strings.Contains(v, "+") {
			v += ".dirty"
		} else {
			v += "+dirty"
		}
	}
	if !debVerRE.MatchString(v) {
		return "", fmt.Errorf("version %q (from git describe %q) is not a Debian version: tag releases as v1.2.3", v, describe)
	}
	return v, nil
}
