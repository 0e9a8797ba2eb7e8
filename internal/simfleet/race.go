//go:build race

package simfleet

// raceEnabled is set under the race detector; see Start's seeding workers.
const raceEnabled = true
