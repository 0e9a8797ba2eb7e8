package simfleet

import (
	"bytes"
	"log"
	"strings"
	"testing"
)

// Starting a fleet with several snapshots per VM prints none of vcsim's
// FileAlreadyExists lines, and other log lines still get through.
func TestQuietVcsim(t *testing.T) {
	var buf bytes.Buffer
	quietVcsim()
	inner := log.Writer().(*dropWriter)
	saved := inner.next
	inner.next = &buf
	t.Cleanup(func() { inner.next = saved })
	ForTest(t, "../../testdata/fleets/small.yaml", Options{Dir: t.TempDir()})
	log.Print("another line")
	if strings.Contains(buf.String(), "FileAlreadyExists") || !strings.Contains(buf.String(), "another line") {
		t.Fatalf("log output:\n%s", buf.String())
	}
}
