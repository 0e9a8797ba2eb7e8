package vsphere

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/session/keepalive"
	"github.com/vmware/govmomi/vapi/rest"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"

	"github.com/snapwarden/snapwarden/internal/config"
)

// Options tune sessions and collection; the zero value is usable.
type Options struct {
	Log zerolog.Logger
	// Counter, when set, counts every call made to vCenter.
	Counter *Counter
	// KeepAlive is the idle interval after which a session is refreshed so a
	// long pause between cycles does not log it out; zero means 10 minutes.
	KeepAlive time.Duration
	// PageSize is the number of objects per RetrievePropertiesEx page; zero
	// means 1,000.
	PageSize int
	// Parallel bounds how many vCenters are collected at once; zero means 4.
	Parallel int
	// Timeout bounds one call's HTTP round trip; zero means 5 minutes.
	Timeout time.Duration
	// CollectTimeout bounds one vCenter's whole collection in Pool.Collect,
	// so a slow vCenter is reported as failed for the cycle instead of
	// holding back every other vCenter's notices; zero means 15 minutes.
	CollectTimeout time.Duration
	// ScanEvery is how often Pool.CollectScan searches a vCenter's
	// datastores for orphan files; zero means 24 hours.
	ScanEvery time.Duration
	// Watch makes the pool keep a Watcher per session (serve): a cycle
	// then reads only what changed since the last one.
	Watch bool
	// FullEvery is how many watched cycles pass between full reads, a
	// safety net for a change vCenter did not report; zero means 24.
	FullEvery int
}

func (o Options) withDefaults() Options {
	if o.KeepAlive == 0 {
		o.KeepAlive = 10 * time.Minute
	}
	if o.PageSize == 0 {
		o.PageSize = 1000
	}
	if o.Parallel == 0 {
		o.Parallel = 4
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.CollectTimeout == 0 {
		o.CollectTimeout = 15 * time.Minute
	}
	if o.ScanEvery == 0 {
		o.ScanEvery = 24 * time.Hour
	}
	if o.FullEvery == 0 {
		o.FullEvery = 24
	}
	return o
}

// Client is one logged-in vCenter session (SOAP and vAPI).
type Client struct {
	// Name is the vCenter's name in the config.
	Name string
	// Version is what the vCenter reports, e.g. "VMware vCenter Server 8.0.3".
	Version string
	// InstanceUUID is the vCenter's about.instanceUuid: its identity in the
	// ledger, whatever its name in the config.
	InstanceUUID string

	vim  *vim25.Client
	rest *rest.Client
	sm   *session.Manager
	opt  Options

	// tagCache maps a tag id to its category and name, so a cycle asks
	// vCenter only about tags it has not seen before.
	mu        sync.Mutex
	tagCache  map[string]tagInfo
	categorys map[string]string
	tagsAt    time.Time

	// stopREST ends keepRESTAlive, which then closes restDone.
	stopREST context.CancelFunc
	restDone chan struct{}
}

type tagInfo struct{ category, name string }

// Dial logs in to one vCenter. TLS is verified unless the config says
// insecure: against ca_file when set, else the pinned thumbprint, else the
// system's roots.
func Dial(ctx context.Context, vc config.VCenter, opt Options) (*Client, error) {
	opt = opt.withDefaults()
	u, err := url.Parse(vc.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("vcenter %q: url %q is not a URL such as https://vc.example.net/sdk", vc.Name, vc.URL)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/sdk"
	}
	sc := soap.NewClient(u, vc.Insecure)
	sc.Timeout = opt.Timeout
	if vc.CAFile != "" {
		if err := sc.SetRootCAs(vc.CAFile); err != nil {
			return nil, fmt.Errorf("vcenter %q: ca_file %s: %w", vc.Name, vc.CAFile, err)
		}
	}
	if vc.Thumbprint != "" {
		sc.SetThumbprint(u.Host, vc.Thumbprint)
	}
	if opt.Counter != nil {
		sc.Client.Transport = opt.Counter.http(sc.Client.Transport)
	}
	vim, err := vim25.NewClient(ctx, sc)
	if err != nil {
		return nil, fmt.Errorf("vcenter %q: connect %s: %w", vc.Name, u.Host, explain(err))
	}
	if opt.Counter != nil {
		vim.RoundTripper = opt.Counter.soap(vim.RoundTripper)
	}
	vim.RoundTripper = keepalive.NewHandlerSOAP(vim.RoundTripper, opt.KeepAlive, nil)
	c := &Client{Name: vc.Name, vim: vim, sm: session.NewManager(vim), opt: opt,
		tagCache: map[string]tagInfo{}, categorys: map[string]string{}}
	user := url.UserPassword(vc.Username, vc.Password.Reveal())
	if err := c.sm.Login(ctx, user); err != nil {
		return nil, fmt.Errorf("vcenter %q: login as %s: %w", vc.Name, vc.Username, explain(err))
	}
	c.rest = rest.NewClient(vim)
	if opt.Counter != nil {
		c.rest.Client.Transport = opt.Counter.http(c.rest.Client.Transport)
	}
	if err := c.rest.Login(ctx, user); err != nil {
		_ = c.sm.Logout(ctx)
		return nil, fmt.Errorf("vcenter %q: vAPI login (tags) as %s: %w", vc.Name, vc.Username, explain(err))
	}
	alive, stop := context.WithCancel(context.Background())
	c.stopREST, c.restDone = stop, make(chan struct{})
	go c.keepRESTAlive(alive)
	c.Version, c.InstanceUUID = vim.ServiceContent.About.FullName, vim.ServiceContent.About.InstanceUuid
	return c, nil
}

// Logout ends both sessions; vCenter limits sessions per user, so every
// process logs out on exit.
func (c *Client) Logout(ctx context.Context) error {
	c.stopREST() // also cuts a ping in flight short
	<-c.restDone
	rerr := c.rest.Logout(ctx)
	serr := c.sm.Logout(ctx)
	if err := errors.Join(serr, rerr); err != nil {
		return fmt.Errorf("vcenter %q: logout: %w", c.Name, err)
	}
	return nil
}

// keepRESTAlive asks vCenter about the vAPI session every KeepAlive until
// Logout. That session idles out on its own: without this it dies between
// cycles longer than vCenter's idle timeout while SOAP (whose keepalive is
// govmomi's handler) lives on, and every other cycle fails to read tags.
// govmomi's REST handler is not used: its ping goes back through itself and
// can deadlock with a concurrent logout.
func (c *Client) keepRESTAlive(alive context.Context) {
	defer close(c.restDone)
	t := time.NewTicker(c.opt.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-alive.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(alive, c.opt.Timeout)
			// A failed ping is not fatal: the next call reports a dead session.
			_, _ = c.rest.Session(ctx)
			cancel()
		}
	}
}

// explain adds what to do to the errors people meet first: an unverified
// certificate and a refused login.
func explain(err error) error {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	msg := err.Error()
	switch {
	case errors.As(err, &ua), strings.Contains(msg, "certificate signed by unknown authority"):
		return fmt.Errorf("%w (the certificate is not trusted: set ca_file to the vCenter's CA, or thumbprint to its SHA-1 thumbprint; insecure: true only by choice)", err)
	case errors.As(err, &hn), strings.Contains(msg, "thumbprint does not match"), strings.Contains(msg, "certificate is valid for"):
		return fmt.Errorf("%w (the certificate does not match: check url, ca_file or thumbprint)", err)
	case strings.Contains(msg, "Login failure"), strings.Contains(msg, "InvalidLogin"):
		return fmt.Errorf("%w (check username and password or password_file)", err)
	}
	return err
}
