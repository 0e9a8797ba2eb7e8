// Package notify renders and delivers snapwarden's messages: customer digests
// and support escalations by email (go-mail), and webhook posts.
//
// Rendering is pure: a Renderer turns a CustomerDigest or a SupportDigest into
// a Message (subject, plain text and HTML) from templates embedded in the
// binary, which an operator may override file by file. Compose turns a
// Message into the exact RFC 5322 bytes stored in the outbox; a Mailer
// delivers those stored bytes unchanged, so a retry repeats the same
// Message-ID and content. A Poster sends the support digest to a chat
// webhook.
package notify

// Templates: customer.txt.tmpl and customer.html.tmpl run with a
// CustomerData, support.txt.tmpl and support.html.tmpl with a SupportData,
// headsup.txt.tmpl and headsup.html.tmpl (a new snapshot's heads-up) with a
// HeadsUpData; each snapshot is an Entry. The .html.tmpl files are html/template, so names
// are escaped. Every template may call size ("1.5 GiB"), age ("2 days 3
// hours"), hours ("50.5h"), days ("14 days"), utc ("2026-11-24 12:00 UTC"),
// date ("2026-11-24"), plural, inc, dec and oneline. NewRenderer executes
// every template once on sample data, so a broken override fails at start.
