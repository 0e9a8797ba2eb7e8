package ledger

// migrations are applied in order; the database's PRAGMA user_version is the
// number applied so far. Never edit a released migration: append a new one,
// since files in the field already carry the old ones.
//
// Times are Unix nanoseconds (UTC); NULL is "not yet" (sent_at, finished_at,
// resolved_at). A snapshot's key column is facts.Key.String(); its parts are
// kept beside it so a facts.Key can be rebuilt exactly.
var migrations = []string{
	// 1: the initial schema.
	`
CREATE TABLE cycles (
	id        INTEGER PRIMARY KEY,
	started   INTEGER NOT NULL,
	finished  INTEGER NOT NULL,
	mode      TEXT    NOT NULL,
	summary   TEXT    NOT NULL,
	errors    TEXT    NOT NULL, -- JSON array of strings
	snapshots INTEGER NOT NULL,
	notices   INTEGER NOT NULL
);

CREATE TABLE snapshots (
	key         TEXT PRIMARY KEY,
	vcenter     TEXT    NOT NULL,
	vm_uuid     TEXT    NOT NULL,
	snapshot_id TEXT    NOT NULL,
	created     INTEGER,
	vm          TEXT    NOT NULL,
	vm_moref    TEXT    NOT NULL,
	name        TEXT    NOT NULL,
	customer    TEXT    NOT NULL,
	creator     TEXT    NOT NULL,
	size_bytes  INTEGER NOT NULL,
	first_seen  INTEGER NOT NULL,
	last_seen   INTEGER NOT NULL,
	last_cycle  INTEGER NOT NULL,
	resolved_at INTEGER
);
-- Resolution scans the open snapshots of one vCenter each cycle.
CREATE INDEX snapshots_vcenter ON snapshots(vcenter);

-- Size history, one row per change (not per cycle) to stay small.
CREATE TABLE size_samples (
	key   TEXT    NOT NULL REFERENCES snapshots(key) ON DELETE CASCADE,
	at    INTEGER NOT NULL,
	bytes INTEGER NOT NULL
);
CREATE INDEX size_samples_key ON size_samples(key, at);

-- Triggers keep the "only on change" rule next to the data, so every
-- writer of snapshots gets it and Record needs no read-before-write.
CREATE TRIGGER snapshots_size_first AFTER INSERT ON snapshots
BEGIN
	INSERT INTO size_samples(key, at, bytes) VALUES (new.key, new.last_seen, new.size_bytes);
END;
CREATE TRIGGER snapshots_size_changed AFTER UPDATE OF size_bytes ON snapshots
WHEN new.size_bytes <> old.size_bytes
BEGIN
	INSERT INTO size_samples(key, at, bytes) VALUES (new.key, new.last_seen, new.size_bytes);
END;

CREATE TABLE notices (
	id         INTEGER PRIMARY KEY,
	cycle_id   INTEGER REFERENCES cycles(id),
	message_id TEXT    NOT NULL UNIQUE,
	channel    TEXT    NOT NULL,
	kind       TEXT    NOT NULL,
	customer   TEXT    NOT NULL,
	recipients TEXT    NOT NULL, -- JSON array of strings
	subject    TEXT    NOT NULL,
	body       BLOB    NOT NULL,
	state      TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
	attempts   INTEGER NOT NULL DEFAULT 0,
	last_error TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	sent_at    INTEGER,
	last_attempt_at INTEGER
);
CREATE INDEX notices_pending ON notices(created_at, id) WHERE state = 'pending';
CREATE INDEX notices_created ON notices(created_at);

-- Items name snapshots by key without a foreign key: a notice may be about
-- a snapshot the ledger never recorded (an action on one that vanished).
CREATE TABLE notice_items (
	notice_id   INTEGER NOT NULL REFERENCES notices(id) ON DELETE CASCADE,
	key         TEXT    NOT NULL,
	vcenter     TEXT    NOT NULL,
	vm_uuid     TEXT    NOT NULL,
	snapshot_id TEXT    NOT NULL,
	created     INTEGER,
	action      TEXT    NOT NULL,
	reason      TEXT    NOT NULL
);
CREATE INDEX notice_items_notice ON notice_items(notice_id);
CREATE INDEX notice_items_key ON notice_items(key, action);
-- Blocked items are few; their own index spares History a scan of all items.
CREATE INDEX notice_items_blocked ON notice_items(key) WHERE action = 'blocked';

CREATE TABLE actions (
	id          INTEGER PRIMARY KEY,
	key         TEXT    NOT NULL,
	key_vcenter TEXT    NOT NULL,
	vm_uuid     TEXT    NOT NULL,
	snapshot_id TEXT    NOT NULL,
	created     INTEGER,
	vcenter     TEXT    NOT NULL,
	vm          TEXT    NOT NULL,
	snapshot    TEXT    NOT NULL,
	customer    TEXT    NOT NULL,
	kind        TEXT    NOT NULL,
	started_at  INTEGER NOT NULL,
	task_id     TEXT    NOT NULL DEFAULT '',
	finished_at INTEGER,
	result      TEXT    NOT NULL DEFAULT '',
	fault       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX actions_key ON actions(key);
CREATE INDEX actions_running ON actions(started_at, id) WHERE finished_at IS NULL;
CREATE INDEX actions_started ON actions(started_at);
`,
	// 2: problems customers cannot see (first sight, resolution) and each
	// vCenter's last orphan file scan, whose findings stand until the next.
	`
CREATE TABLE problems (
	key         TEXT PRIMARY KEY, -- facts.Problem.Key()
	kind        TEXT    NOT NULL,
	vcenter     TEXT    NOT NULL,
	datacenter  TEXT    NOT NULL,
	vm          TEXT    NOT NULL,
	vm_id       TEXT    NOT NULL,
	datastore   TEXT    NOT NULL,
	path        TEXT    NOT NULL,
	size_bytes  INTEGER NOT NULL,
	customer    TEXT    NOT NULL,
	detail      TEXT    NOT NULL,
	first_seen  INTEGER NOT NULL,
	last_seen   INTEGER NOT NULL,
	resolved_at INTEGER
);
CREATE INDEX problems_open ON problems(vcenter) WHERE resolved_at IS NULL;

CREATE TABLE orphan_scans (
	vcenter TEXT PRIMARY KEY,
	at      INTEGER NOT NULL
);
`,
	// 3: acknowledgements: support takes an escalation in hand until a time;
	// the row keeps the snapshot's state then, since a change of state
	// ends the acknowledgement. Keyed like actions (no foreign key: a
	// snapshot resolved later keeps its acknowledgements in the trail).
	`
CREATE TABLE acks (
	id          INTEGER PRIMARY KEY,
	key         TEXT    NOT NULL,
	vcenter     TEXT    NOT NULL,
	vm_uuid     TEXT    NOT NULL,
	snapshot_id TEXT    NOT NULL,
	created     INTEGER,
	state       TEXT    NOT NULL,
	by_user     TEXT    NOT NULL,
	note        TEXT    NOT NULL,
	at          INTEGER NOT NULL,
	until_at    INTEGER NOT NULL
);
CREATE INDEX acks_key ON acks(key, at);
CREATE INDEX acks_at ON acks(at);
`,
	// 4: keys name a vCenter by its instance UUID, which survives renaming it
	// in the config; this keeps the config name of each for people.
	`
CREATE TABLE vcenters (
	id   TEXT PRIMARY KEY, -- about.instanceUuid, the vcenter part of keys
	name TEXT NOT NULL     -- its name in the config when it last answered
);
`,
	// 5: delivery per recipient. A notice is settled when each of its
	// recipients is: sent (accepted by the server) or failed (rejected for
	// good). "sending" is written before SMTP starts, so a crash or a failed
	// write leaves it for a retry with the same bytes and Message-ID.
	// reported_at is when a support notice listing a rejection was queued,
	// so each is reported once. Existing notices get one row per recipient
	// in their own state; their old failures count as reported (their
	// per-address reply is unknown).
	`
CREATE TABLE notice_recipients (
	notice_id       INTEGER NOT NULL REFERENCES notices(id) ON DELETE CASCADE,
	address         TEXT    NOT NULL,
	state           TEXT    NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT    NOT NULL DEFAULT '', -- the server's reply to the last failed attempt
	last_attempt_at INTEGER,
	sent_at         INTEGER,
	reported_at     INTEGER,
	PRIMARY KEY (notice_id, address)
);
CREATE INDEX notice_recipients_unreported ON notice_recipients(notice_id) WHERE state = 'failed' AND reported_at IS NULL;

INSERT INTO notice_recipients(notice_id, address, state, attempts, last_error, last_attempt_at, sent_at, reported_at)
SELECT n.id, r.value, n.state, n.attempts, n.last_error, n.last_attempt_at, n.sent_at,
	CASE WHEN n.state = 'failed' THEN n.created_at END
FROM notices n, json_each(n.recipients) r
WHERE true
ON CONFLICT DO NOTHING;
`,
	// 6: customers' self-service requests (selfservice links). One row per
	// use of a link: the token's digest makes a second POST of the same link
	// a no-op, and the key names the snapshot as elsewhere.
	`
CREATE TABLE requests (
	id          INTEGER PRIMARY KEY,
	token       TEXT    NOT NULL UNIQUE, -- SHA-256 of the token, hex: never the token itself
	key         TEXT    NOT NULL,
	vcenter     TEXT    NOT NULL,
	vm_uuid     TEXT    NOT NULL,
	snapshot_id TEXT    NOT NULL,
	created     INTEGER,
	customer    TEXT    NOT NULL,
	action      TEXT    NOT NULL CHECK (action IN ('extend', 'commit', 'not-mine')),
	at          INTEGER NOT NULL,
	remote      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX requests_key ON requests(key, at);
CREATE INDEX requests_at ON requests(at);
`,
	// 7: size samples stay bounded (thinSamples): the indexes find the
	// samples of a time range and the snapshots resolved in one; a row of
	// sample_thinning is where each tier of thinning goes on from.
	`
CREATE INDEX size_samples_at ON size_samples(at);
CREATE INDEX snapshots_resolved ON snapshots(resolved_at) WHERE resolved_at IS NOT NULL;
CREATE TABLE sample_thinning (
	period_ns INTEGER PRIMARY KEY, -- the tier's period (nanoseconds)
	next_at   INTEGER NOT NULL
);
`,
}
