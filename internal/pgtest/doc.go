// Package pgtest gives tests a real PostgreSQL: the server named by
// SNAPWARDEN_TEST_POSTGRES (a postgres:// DSN), else a throwaway cluster
// started with initdb and pg_ctl when they are installed, else nothing, and
// the tests that need one skip with a line saying why. Each test gets its own
// schema, dropped afterwards, so test packages running in parallel against
// one server never see each other's tables or advisory locks.
package pgtest
