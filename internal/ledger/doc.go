// Package ledger is snapwarden's durable memory: snapshots seen, notices (an
// outbox), consolidation actions and cycles, in SQLite or PostgreSQL.
//
// One process writes (Open takes an advisory lock beside the database file);
// any number of readers (OpenReader) may look at the same file meanwhile,
// which WAL journaling allows without blocking the writer. Everything a cycle
// learns is written by Record in one transaction, so a crash leaves either the
// whole cycle or none of it. Notices are an outbox: Record queues them as
// pending together with the facts that caused them, and delivery marks them
// sent or failed afterwards, so a crash between the two re-delivers the very
// same bytes under the same Message-ID rather than losing or re-planning them.
// Delivery is tracked per recipient (notice_recipients): each is marked
// "sending" before SMTP starts and settled after, and a rejected contact
// never settles the others. The result of a consolidation and the notices
// telling of it are written together by FinishAction.
//
// On PostgreSQL (a postgres:// state) several processes share the ledger and
// one of them acts: the holder of TryLead's lease, an advisory lock on a
// connection of its own. The SQL is SQLite's, translated by a thin dialect
// layer (postgres.go): placeholders rebound in the driver, ids read back with
// RETURNING, migrations translated and applied once under a lock.
//
// Times are stored as Unix nanoseconds and returned in UTC; snapshot keys are
// stored both as facts.Key.String() (the primary key) and as their parts, so
// a returned facts.Key compares equal (==) to the one facts.Snapshot.Key gave.
package ledger
