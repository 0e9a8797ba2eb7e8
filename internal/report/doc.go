// Package report renders a plan as the dry-run report: table, JSON, CSV,
// Markdown, HTML.
//
// Every format shows the same rows (see Rows): one per snapshot, filtered by
// customer and state and sorted most urgent first. The JSON form is the
// contract of docs/report.md; the others are for people and spreadsheets, and
// neutralise names that customers control (control characters, markup,
// spreadsheet formulas).
package report
