package cycle

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// BenchmarkCycle runs whole cycles (collect over HTTPS, plan, ledger
// transaction, delivery to a loopback SMTP server) over a generated fleet:
// bench-1k.yaml, or bench-10k.yaml with SNAPWARDEN_BENCH_VMS=10000.
func BenchmarkCycle(b *testing.B) {
	fleet := "bench-1k.yaml"
	if os.Getenv("SNAPWARDEN_BENCH_VMS") == "10000" {
		fleet = "bench-10k.yaml"
	}
	e := newEnv(b, fleet)
	b.Run(fmt.Sprintf("%s/first", fleet), func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			e.cfg.State = fmt.Sprintf("%s/first-%d.db", e.dir, i)
			r, err := New(context.Background(), e.cfg, Options{Log: zerolog.Nop()})
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			res, err := r.Cycle(context.Background(), t0)
			if err != nil || len(res.Plan.Decisions) == 0 {
				b.Fatalf("cycle: %v", err)
			}
			b.StopTimer()
			_ = r.Close(context.Background())
			b.StartTimer()
		}
	})
	b.Run(fmt.Sprintf("%s/steady", fleet), func(b *testing.B) {
		e.cfg.State = e.dir + "/steady.db"
		r, err := New(context.Background(), e.cfg, Options{Log: zerolog.Nop()})
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close(context.Background())
		if _, err := r.Cycle(context.Background(), t0); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := r.Cycle(context.Background(), t0.Add(time.Duration(i+1)*time.Minute)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
