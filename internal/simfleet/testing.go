package simfleet

import (
	"context"
	"testing"
)

// ForTest loads a fleet file and starts it for one test, closing it when the
// test ends; any failure fails the test.
func ForTest(t testing.TB, path string, o Options) *Sim {
	t.Helper()
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(context.Background(), f, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}
