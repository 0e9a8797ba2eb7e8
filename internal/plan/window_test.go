package plan

import (
	"strings"
	"testing"
	"time"
)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func window(t *testing.T, spec string, d time.Duration, local *time.Location) *Window {
	t.Helper()
	w, err := ParseWindow(spec, d, local)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func rfc(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// TestWindowIsLocalWhateverTheClockZone: `run` and `report` pass UTC times,
// `serve` local ones; on a New York host "0 22 * * *" is 22:00 New York for
// all of them (the host zone is injected, time.Local is left alone).
func TestWindowIsLocalWhateverTheClockZone(t *testing.T) {
	ny := zone(t, "America/New_York")
	w := window(t, "0 22 * * *", 6*time.Hour, ny)
	for _, tt := range []struct {
		at   string
		open bool
		next string
	}{
		{"2026-11-24T17:00:00-05:00", false, "2026-11-25T03:00:00Z"}, // 22:00 UTC: the old reading opened here
		{"2026-11-24T21:59:00-05:00", false, "2026-11-25T03:00:00Z"},
		{"2026-11-24T22:00:00-05:00", true, ""},
		{"2026-11-25T03:59:00-05:00", true, ""},
		{"2026-11-25T04:00:00-05:00", false, "2026-11-26T03:00:00Z"},
	} {
		at := rfc(t, tt.at)
		for _, clock := range []time.Time{at.UTC(), at.In(ny), at.In(zone(t, "Asia/Tokyo"))} {
			open, next := w.Open(clock)
			if open != tt.open || (!open && next.UTC().Format(time.RFC3339) != tt.next) {
				t.Errorf("at %s: open=%v next=%s, want %v %s", clock, open, next.UTC().Format(time.RFC3339), tt.open, tt.next)
			}
		}
	}
}

func TestWindowCronTZOverridesTheHostZone(t *testing.T) {
	w := window(t, "CRON_TZ=Europe/Berlin 0 22 * * *", 2*time.Hour, zone(t, "America/New_York"))
	if open, _ := w.Open(rfc(t, "2026-11-24T21:30:00Z")); !open { // 22:30 in Berlin
		t.Errorf("a CRON_TZ=Europe/Berlin window is closed at 22:30 Berlin time")
	}
	if open, _ := w.Open(rfc(t, "2026-11-25T03:30:00Z")); open { // 22:30 in New York
		t.Errorf("a CRON_TZ=Europe/Berlin window is open at 22:30 New York time")
	}
}

// TestWindowSpringForward: 02:30 does not exist in New York on 2026-03-08.
// The window opens at the first valid instant (03:00 EDT) and closes when it
// would have (08:30 EDT), instead of skipping the day.
func TestWindowSpringForward(t *testing.T) {
	w := window(t, "30 2 * * *", 6*time.Hour, zone(t, "America/New_York"))
	for _, tt := range []struct {
		at   string
		open bool
		next string
	}{
		{"2026-03-08T01:59:00-05:00", false, "2026-03-08T07:00:00Z"},
		{"2026-03-08T03:00:00-04:00", true, ""},
		{"2026-03-08T08:29:00-04:00", true, ""},
		{"2026-03-08T08:30:00-04:00", false, "2026-03-09T06:30:00Z"},
		{"2026-03-09T02:30:00-04:00", true, ""},
	} {
		at := rfc(t, tt.at)
		open, next := w.Open(at)
		if open != tt.open || (!open && next.UTC().Format(time.RFC3339) != tt.next) {
			t.Errorf("at %s: open=%v next=%s, want %v %s", tt.at, open, next.UTC().Format(time.RFC3339), tt.open, tt.next)
		}
	}
	start, end := w.Span(rfc(t, "2026-03-08T04:00:00-04:00"))
	if got := end.Sub(start); got != 5*time.Hour+30*time.Minute {
		t.Errorf("the spring-forward window lasts %s, want 5h30m (6h less the skipped half hour)", got)
	}
}

func TestWindowRejectsAnInterval(t *testing.T) {
	if _, err := ParseWindow("@every 1h", time.Hour, time.UTC); err == nil {
		t.Fatal("@every accepted as the start of a window")
	}
}

// TestWindowFits: a removal starts only when it is expected to end before
// the window closes, at the rate learnt from earlier removals.
func TestWindowFits(t *testing.T) {
	w := window(t, "0 22 * * *", 6*time.Hour, time.UTC).WithRate(100 << 20) // 100 MiB/s: 1 TiB in about 2.9h
	const tib = int64(1) << 40
	for _, tt := range []struct {
		name, at string
		size     int64
		why      string // substring; "" = may start
		next     string
	}{
		{"fits", "2026-11-24T22:00:00Z", tib, "", ""},
		{"closed", "2026-11-24T12:00:00Z", tib, "outside the maintenance window; it opens at 2026-11-24T22:00:00Z", "2026-11-24T22:00:00Z"},
		{"not enough left", "2026-11-25T02:00:00Z", tib, "more than the 2h00m left before the maintenance window closes at 2026-11-25T04:00:00Z; it waits for the window at 2026-11-25T22:00:00Z", "2026-11-25T22:00:00Z"},
		{"never fits", "2026-11-24T22:00:00Z", 3 * tib, "no window is long enough", "2026-11-25T22:00:00Z"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			why, next := w.Fits(rfc(t, tt.at), tt.size)
			if (tt.why == "") != (why == "") || !strings.Contains(why, tt.why) {
				t.Fatalf("why = %q, want %q", why, tt.why)
			}
			if tt.next != "" && next.UTC().Format(time.RFC3339) != tt.next {
				t.Errorf("next = %s, want %s", next.UTC().Format(time.RFC3339), tt.next)
			}
		})
	}
	// Without history the default rate applies: slower, so less fits.
	if why, _ := w.WithRate(0).Fits(rfc(t, "2026-11-24T22:00:00Z"), tib); why == "" {
		t.Errorf("1 TiB fits in 6h at the default %s/s", IEC(DefaultRemovalRate))
	}
}

// TestPlannerWaitsForAWindowLongEnough: inside the window, a snapshot whose
// removal would outlast it is blocked by the window guard until the next one.
func TestPlannerWaitsForAWindowLongEnough(t *testing.T) {
	warned := History{CustomerNotices: 1, LastCustomerNotice: t0.Add(-time.Hour), WarnedAt: t0.Add(-30 * time.Hour)}
	it := item("big", 61*time.Hour, "consolidate", true)
	it.Snapshot.SizeBytes = 200 * gib
	it.Snapshot.VM.Datastores[0].Free = 900 * gib
	w := &Window{Start: fixed(t0.Add(-30 * time.Minute)), Duration: time.Hour, Rate: 1 << 30} // 1 GiB/s: 200 GiB in 3m20s+2m
	set := Settings{MaxPerRun: 10, MaxAttempts: 3, Window: w}
	if d := decideOne(t, it, warned, set, t0); d.Action != ActionConsolidate || !d.Due {
		t.Fatalf("with 30 minutes left a 5-minute removal: %s %s (%s)", d.Action, d.Reason, d.Why)
	}
	set.Window = w.WithRate(50 << 20) // 50 MiB/s: 200 GiB in over an hour
	d := decideOne(t, it, warned, set, t0)
	if d.Action != ActionBlocked || d.Reason != ReasonGuardWindow || !d.At.Equal(t0.Add(23*time.Hour+30*time.Minute)) {
		t.Fatalf("got %s %s at %s (%s), want blocked guard-window until the next window", d.Action, d.Reason, d.At, d.Why)
	}
}

// TestWindowsThatOverlapAreOne: hourly starts with a 6h duration leave no
// gap, so a 10h removal fits although no single window is that long.
func TestWindowsThatOverlapAreOne(t *testing.T) {
	w := window(t, "0 * * * *", 6*time.Hour, time.UTC).WithRate(1 << 20)
	if why, _ := w.Fits(rfc(t, "2026-11-24T12:00:00Z"), 10*3600<<20); why != "" {
		t.Fatalf("a 10h removal in back-to-back windows: %s", why)
	}
}
