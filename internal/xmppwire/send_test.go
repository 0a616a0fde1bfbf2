package xmppwire

import (
	"context"
	"encoding/xml"
	"testing"
)

// oneStanza reads one element from r, as mellium's Send does.
type oneStanza struct{ got []string }

func (o *oneStanza) Send(_ context.Context, r xml.TokenReader) error {
	depth := 0
	for {
		tok, err := r.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				o.got = append(o.got, t.Name.Local)
			}
			depth++
		case xml.EndElement:
			if depth--; depth == 0 {
				return nil
			}
		}
	}
}

// Send consumes the stanza it wrote, so a loop over several ends.
func TestSendConsumesOneStanza(t *testing.T) {
	var ts Tokens
	ts = Empty(ts, El(xml.Name{Local: "presence"}, "to", "a@b"))
	ts = Empty(ts, El(xml.Name{Local: "iq"}, "to", "a@b"))
	o := &oneStanza{}
	for i := 0; len(ts) > 0; i++ {
		if i == 3 {
			t.Fatalf("Send did not consume: %v", o.got)
		}
		if err := Send(context.Background(), o, &ts); err != nil {
			t.Fatal(err)
		}
	}
	if len(o.got) != 2 || o.got[0] != "presence" || o.got[1] != "iq" {
		t.Fatalf("sent %v", o.got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ts = Empty(ts, El(xml.Name{Local: "presence"}))
	if err := Send(ctx, o, &ts); err == nil || len(o.got) != 2 {
		t.Fatalf("a cancelled send went out: %v %v", err, o.got)
	}
}
