package vsphere

import (
	"context"
	"net/http"
	"sync/atomic"

	"github.com/vmware/govmomi/vim25/soap"
)

// Counter counts calls to vCenter: SOAP methods and vAPI (REST) requests. The
// benchmarks report it, to show a cycle's calls grow with pages and new
// snapshots rather than with VMs.
type Counter struct {
	soapCalls atomic.Int64
	httpCalls atomic.Int64
}

// SOAP returns the number of SOAP method calls.
func (c *Counter) SOAP() int64 { return c.soapCalls.Load() }

// HTTP returns the number of HTTP requests, SOAP and vAPI together.
func (c *Counter) HTTP() int64 { return c.httpCalls.Load() }

func (c *Counter) soap(rt soap.RoundTripper) soap.RoundTripper { return &countSOAP{rt, c} }

func (c *Counter) http(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return &countHTTP{rt, c}
}

type countSOAP struct {
	rt soap.RoundTripper
	c  *Counter
}

func (r *countSOAP) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	r.c.soapCalls.Add(1)
	return r.rt.RoundTrip(ctx, req, res)
}

type countHTTP struct {
	rt http.RoundTripper
	c  *Counter
}

func (r *countHTTP) RoundTrip(req *http.Request) (*http.Response, error) {
	r.c.httpCalls.Add(1)
	return r.rt.RoundTrip(req)
}
