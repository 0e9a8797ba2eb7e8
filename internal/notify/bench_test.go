package notify

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkDigests1000 renders, composes and sends one digest to each of
// 1,000 customers through a loopback SMTP server: the target is 10 s
// with connections reused (the sink counts them).
func BenchmarkDigests1000(b *testing.B) {
	s := sink(b)
	m := mailer(b, s)
	rd, err := NewRenderer("")
	if err != nil {
		b.Fatal(err)
	}
	base := customerDigest()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := make([]Outgoing, 1000)
		for c := range out {
			d := base
			d.Customer = Customer{ID: fmt.Sprintf("cust-%04d", c), Name: fmt.Sprintf("Customer %d", c),
				Contacts: []string{fmt.Sprintf("ops@cust-%04d.example", c)}}
			msg, err := rd.Customer(d)
			if err != nil {
				b.Fatal(err)
			}
			raw, err := Compose(msg, testFrom, NewMessageID(testFrom, cycleAt), cycleAt)
			if err != nil {
				b.Fatal(err)
			}
			out[c] = Outgoing{To: msg.To, Raw: raw}
		}
		for _, err := range m.Send(context.Background(), out) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(s.Connections())/float64(b.N), "smtp-conns/op")
}
