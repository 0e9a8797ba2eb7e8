// Package failpoint lets the crash tests stop snapwarden at a chosen ledger
// write or SMTP step. Hit is a no-op in every normal build; only a binary
// built with `-tags failpoints` reads SNAPWARDEN_FAILPOINT and acts on it:
//
//	SNAPWARDEN_FAILPOINT=ledger.sending:3       kill the process (SIGKILL) at the 3rd hit
//	SNAPWARDEN_FAILPOINT=ledger.sending:3:fail  the 3rd and later hits return an error (a full disk)
package failpoint
