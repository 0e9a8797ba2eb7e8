package simfleet

import (
	"bytes"
	"io"
	"log"
	"sync"
)

// quietOnce installs quietVcsim once per process.
var quietOnce sync.Once

// quietVcsim drops vcsim's "*types.FileAlreadyExists: ...vmsn" lines from
// the standard logger: vcsim prints one for every snapshot after a VM's
// first (it reuses the memory file's name) and fails nothing, but in the
// demo's and the tests' output it reads like an error. Every other line
// still goes where the standard logger wrote before.
func quietVcsim() {
	quietOnce.Do(func() { log.SetOutput(&dropWriter{next: log.Writer()}) })
}

type dropWriter struct{ next io.Writer }

func (w *dropWriter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("*types.FileAlreadyExists: ")) && bytes.Contains(p, []byte(".vmsn")) {
		return len(p), nil
	}
	return w.next.Write(p)
}
