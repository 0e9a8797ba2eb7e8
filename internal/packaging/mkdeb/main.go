// Command mkdeb builds snapwarden's .deb (`make deb`): it derives the Debian
// version from git describe and packages a binary built beforehand, every
// file stamped with the commit's time so that a rebuild gives the same bytes.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/snapwarden/snapwarden/internal/packaging"
)

func main() {
	var o packaging.Options
	flag.StringVar(&o.Root, "root", ".", "the repository (configs/, README.md, docs/)")
	flag.StringVar(&o.Binary, "binary", "bin/snapwarden", "the snapwarden executable to package")
	flag.StringVar(&o.Arch, "arch", "", "GOARCH the binary was built for (default: this machine's)")
	flag.StringVar(&o.Maintainer, "maintainer", packaging.DefaultMaintainer, `the Maintainer field, "Name <email>"`)
	out := flag.String("out", "bin", "the folder to write the .deb into")
	flag.Parse()
	if err := run(o, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkdeb:", err)
		os.Exit(1)
	}
}

func run(o packaging.Options, out string) error {
	describe, err := git(o.Root, "describe", "--tags", "--always", "--dirty")
	if err != nil {
		return err
	}
	count, err := git(o.Root, "rev-list", "--count", "HEAD")
	if err != nil {
		return err
	}
	commits, err := strconv.Atoi(count)
	if err != nil {
		return fmt.Errorf("git rev-list --count HEAD: %q is not a number", count)
	}
	if o.Version, err = packaging.DebianVersion(describe, commits); err != nil {
		return err
	}
	committed, err := git(o.Root, "log", "-1", "--format=%ct")
	if err != nil {
		return err
	}
	sec, err := strconv.ParseInt(committed, 10, 64)
	if err != nil {
		return fmt.Errorf("git log -1 --format=%%ct: %q is not a time", committed)
	}
	o.MTime = time.Unix(sec, 0).UTC()
	path, err := packaging.Build(o, out)
	if err != nil {
		return err
	}
	fmt.Println(path)
	return nil
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s in %s: %w", strings.Join(args, " "), dir, err)
	}
	return strings.TrimSpace(string(b)), nil
}
