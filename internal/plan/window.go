package plan

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// DefaultRemovalRate is the rate, in bytes per second, assumed for a removal
// when the ledger has no successful removal to learn from: 20 MiB/s (about
// 70 GiB an hour). Consolidation speed depends on the storage; this is slow
// on purpose, so a first removal is rather deferred to a longer window than
// cut off when the window closes.
const DefaultRemovalRate = 20 << 20

// removalOverhead is added to every expected removal: starting the task and
// stunning the VM at the end take time even for an empty delta.
const removalOverhead = 2 * time.Minute

// Window is a maintenance window: it opens at every activation of Start,
// read as wall-clock time in Location, and stays open for Duration.
//
// Start is evaluated on wall clocks stamped as UTC (ParseWindow arranges
// it), so the result never depends on the zone of the time passed in:
// `report` and `run` (UTC) and `serve` (local time) see the same window.
type Window struct {
	Start    cron.Schedule
	Duration time.Duration
	// Location is the zone the spec is read in; nil means UTC.
	Location *time.Location
	// Rate is the removal speed in bytes per second learnt from the
	// ledger's earlier removals; zero means DefaultRemovalRate.
	Rate float64
}

// ParseWindow reads enforcement.window: spec is a cron spec in the zone
// local (the host's), unless it starts with CRON_TZ=Zone/Name (or TZ=).
func ParseWindow(spec string, d time.Duration, local *time.Location) (*Window, error) {
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, err
	}
	ss, ok := sched.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("%q is an interval, not the time of day a window opens (such as \"0 22 * * *\")", spec)
	}
	loc := ss.Location
	if loc == time.Local && !strings.HasPrefix(spec, "TZ=") && !strings.HasPrefix(spec, "CRON_TZ=") {
		loc = local
	}
	wall := *ss
	wall.Location = time.UTC
	return &Window{Start: &wall, Duration: d, Location: loc}, nil
}

// Open reports whether the window is open at now, and when it next opens
// (now itself when open; the zero time when it never does).
func (w *Window) Open(now time.Time) (bool, time.Time) {
	if w == nil {
		return true, now
	}
	start, _ := w.Span(now)
	if !start.After(now) && !start.IsZero() {
		return true, now
	}
	return false, start
}

// Span returns the window that contains now, or else the next one, as
// instants. A start that does not exist in Location (02:30 on the day clocks
// spring forward) opens at the first instant after the gap and closes when
// it would have: it loses only the skipped part. Zero times mean the spec
// never fires again.
func (w *Window) Span(now time.Time) (time.Time, time.Time) {
	loc := w.loc()
	wall := wallClock(now.In(loc))
	// A window still open at now began at most Duration before it, plus the
	// hour a clock change can move wall time.
	for s := w.Start.Next(wall.Add(-w.Duration - time.Hour)); !s.IsZero(); s = w.Start.Next(s) {
		start, end := w.instants(s, loc)
		if now.Before(end) && start.Before(end) {
			return start, end
		}
	}
	return time.Time{}, time.Time{}
}

// instants maps one activation s (wall clock stamped UTC) to the instants
// the window opens and closes in loc.
func (w *Window) instants(s time.Time, loc *time.Location) (time.Time, time.Time) {
	start := time.Date(s.Year(), s.Month(), s.Day(), s.Hour(), s.Minute(), s.Second(), 0, loc)
	if wallClock(start).Equal(s) {
		return start, start.Add(w.Duration)
	}
	// s falls in a gap: time.Date picked an instant on one side of it. The
	// first valid instant is the start of the zone in effect after the gap.
	from, to := start.ZoneBounds()
	after := to
	if wallClock(start).After(s) {
		after = from
	}
	return after, after.Add(w.Duration - wallClock(after).Sub(s))
}

func (w *Window) loc() *time.Location {
	if w.Location == nil {
		return time.UTC
	}
	return w.Location
}

// wallClock restamps t's wall clock as UTC, where no clock change happens.
func wallClock(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// WithRate returns a copy of w that expects removals at rate bytes per
// second; nil stays nil (no window).
func (w *Window) WithRate(rate float64) *Window {
	if w == nil {
		return nil
	}
	c := *w
	c.Rate = rate
	return &c
}

// rate is Rate, or DefaultRemovalRate when nothing was learnt.
func (w *Window) rate() float64 {
	if w.Rate <= 0 {
		return DefaultRemovalRate
	}
	return w.Rate
}

// ExpectedRemoval is how long removing size bytes is expected to take.
func (w *Window) ExpectedRemoval(size int64) time.Duration {
	return removalOverhead + time.Duration(float64(size)/w.rate()*float64(time.Second)).Round(time.Second)
}

// Fits is the window guard, shared by the planner and enforce's re-check: a
// removal of size bytes starts at now only when the window is open and the
// removal, at the window's Rate, is expected to end before it closes.
// It returns "" when it may start, else the refusal and when to look again.
func (w *Window) Fits(now time.Time, size int64) (string, time.Time) {
	if w == nil {
		return "", now
	}
	open, next := w.Open(now)
	switch {
	case !open && next.IsZero():
		return "the maintenance window never opens again (enforcement.window.start)", now
	case !open:
		return "outside the maintenance window; it opens at " + stamp(next), next
	}
	_, end := w.Span(now)
	need := w.ExpectedRemoval(size)
	if end = w.extend(end, now.Add(need)); !now.Add(need).After(end) {
		return "", now
	}
	next, nextEnd := w.Span(end)
	why := fmt.Sprintf("the removal of %s is expected to take %s (at %s/s), more than the %s left before the maintenance window closes at %s",
		IEC(size), hm(need), IEC(int64(w.rate())), hm(end.Sub(now)), stamp(end))
	if next.IsZero() {
		return why + "; the window never opens again", now
	}
	if w.extend(nextEnd, next.Add(need)).Sub(next) < need {
		return why + "; no window is long enough: support must plan it", next
	}
	return why + "; it waits for the window at " + stamp(next), next
}

// extend follows windows that overlap or touch the one ending at end (an
// hourly spec with a 6h duration is one long window) until until, and
// returns where the run of windows ends.
func (w *Window) extend(end, until time.Time) time.Time {
	for end.Before(until) {
		s, e := w.Span(end)
		if s.IsZero() || s.After(end) {
			break
		}
		end = e
	}
	return end
}

// hm prints a duration to the minute: "2h05m".
func hm(d time.Duration) string {
	d = d.Round(time.Minute)
	return fmt.Sprintf("%dh%02dm", d/time.Hour, d%time.Hour/time.Minute)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
