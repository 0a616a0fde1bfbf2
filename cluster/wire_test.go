package cluster

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func encodeRequest(r *deliverRequest) []byte {
	return appendRequest(nil, &r.Message, &r.Binding, r.TimeoutMS)
}

// fillEvery sets every field of the struct v points to, nested structs
// included, to a value that is not its zero one.
func fillEvery(t *testing.T, v reflect.Value, at time.Time) {
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		switch {
		case f.Type() == reflect.TypeOf(time.Time{}):
			f.Set(reflect.ValueOf(at.Add(time.Duration(i) * time.Second)))
		case f.Kind() == reflect.Struct:
			fillEvery(t, f, at)
		case f.Kind() == reflect.String:
			f.SetString("value of " + name)
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		case f.CanUint():
			f.SetUint(uint64(i%3 + 1))
		case f.CanInt():
			f.SetInt(int64(-7 * (i + 1)))
		default:
			t.Fatalf("field %s of %s: kind %v has no test value; teach fillEvery and the wire format", name, v.Type(), f.Kind())
		}
	}
}

// sameEvery compares every field, times by the instant they name.
func sameEvery(t *testing.T, want, got reflect.Value, path string) {
	for i := range want.NumField() {
		w, g, p := want.Field(i), got.Field(i), path+"."+want.Type().Field(i).Name
		switch {
		case w.Type() == reflect.TypeOf(time.Time{}):
			if !w.Interface().(time.Time).Equal(g.Interface().(time.Time)) {
				t.Errorf("%s: sent %v, got %v", p, w, g)
			}
		case w.Kind() == reflect.Struct:
			sameEvery(t, w, g, p)
		case !reflect.DeepEqual(w.Interface(), g.Interface()):
			t.Errorf("%s: sent %v, got %v (a field the wire format does not carry?)", p, w, g)
		}
	}
}

// A field added to msg.Message or presence.Binding must cross nodes: this
// fails until the wire format carries it.
func TestWireCoversEveryField(t *testing.T) {
	var r deliverRequest
	fillEvery(t, reflect.ValueOf(&r).Elem(), time.Date(2026, 12, 7, 3, 4, 5, 678901234, time.UTC))
	var got deliverRequest
	if err := decodeRequest(encodeRequest(&r), &got); err != nil {
		t.Fatal(err)
	}
	sameEvery(t, reflect.ValueOf(r), reflect.ValueOf(got), "deliverRequest")

	// Zero values and the JSON form (nodes that send it) as well.
	var zero, back deliverRequest
	if err := decodeRequest(encodeRequest(&zero), &back); err != nil || !reflect.DeepEqual(zero, back) {
		t.Errorf("zero request: %+v, %v", back, err)
	}
	js, _ := json.Marshal(r)
	var fromJSON deliverRequest
	if err := decodeRequest(js, &fromJSON); err != nil {
		t.Fatal(err)
	}
	sameEvery(t, reflect.ValueOf(r), reflect.ValueOf(fromJSON), "json")
}

func TestWireRefusesMalformed(t *testing.T) {
	var r deliverRequest
	fillEvery(t, reflect.ValueOf(&r).Elem(), time.Now())
	good := encodeRequest(&r)
	for name, b := range map[string][]byte{
		"empty":     nil,
		"version":   append([]byte{9}, good[1:]...),
		"truncated": good[:len(good)-1],
		"trailing":  append(append([]byte(nil), good...), 0),
		"long":      {wireV1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		var got deliverRequest
		if err := decodeRequest(b, &got); err == nil {
			t.Errorf("%s: decoded %+v", name, got)
		}
	}
}

// FuzzDecodeRequest: any bytes either decode or are refused, never a
// panic; what decodes encodes back to a request that decodes the same.
func FuzzDecodeRequest(f *testing.F) {
	var r deliverRequest
	fillEvery(&testing.T{}, reflect.ValueOf(&r).Elem(), time.Unix(1796000000, 5))
	f.Add(encodeRequest(&r))
	f.Add(encodeRequest(&deliverRequest{}))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got deliverRequest
		if decodeRequest(data, &got) != nil || len(data) == 0 || data[0] == '{' {
			return
		}
		var again deliverRequest
		if err := decodeRequest(encodeRequest(&got), &again); err != nil {
			t.Fatalf("re-encoded request refused: %v", err)
		}
		sameEvery(t, reflect.ValueOf(got), reflect.ValueOf(again), "again")
	})
}

// TestWriteFuzzSeeds keeps testdata/fuzz/FuzzDecodeRequest in step with
// the format (CLUSTER_WRITE_SEEDS=1 rewrites it).
func TestWriteFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeRequest")
	var r deliverRequest
	fillEvery(t, reflect.ValueOf(&r).Elem(), time.Unix(1796000000, 5))
	js, _ := json.Marshal(r)
	seeds := map[string][]byte{"full": encodeRequest(&r), "zero": encodeRequest(&deliverRequest{}), "json": js}
	for name, b := range seeds {
		path := filepath.Join(dir, name)
		want := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b)
		if os.Getenv("CLUSTER_WRITE_SEEDS") != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != string(want) {
			t.Errorf("%s is not the current seed (%v): run CLUSTER_WRITE_SEEDS=1 go test -run TestWriteFuzzSeeds ./cluster/", path, err)
		}
	}
}

// BenchmarkRequestCodec: encoding and decoding one delivery request, the
// part of a crossing that is the format's.
func BenchmarkRequestCodec(b *testing.B) {
	now := time.Now()
	r := deliverRequest{TimeoutMS: 7999}
	r.Message.ID, r.Message.From, r.Message.To = "1lhamslcn0hk00000001", "+8613900000009", "+8613800000042"
	r.Message.Text, r.Message.Accepted, r.Message.Expires = "a short message of forty characters, or so", now, now.Add(24*time.Hour)
	r.Message.Origin.Account, r.Message.Origin.Ref = "esme1", "1234"
	r.Binding.AOR, r.Binding.Contact, r.Binding.Via = "+8613800000042", "sip:8613800000042@127.0.0.1:40000", "sip"
	r.Binding.Expires, r.Binding.Updated, r.Binding.Node = now.Add(time.Hour), now, "a"
	b.Run("format=json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			data, _ := json.Marshal(&r)
			var got deliverRequest
			if err := decodeRequest(data, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("format=binary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			data := appendRequest(make([]byte, 0, 256+len(r.Message.Text)), &r.Message, &r.Binding, r.TimeoutMS)
			var got deliverRequest
			if err := decodeRequest(data, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A copy in the accepted-messages bucket decodes from the binary record
// and from the JSON earlier versions wrote.
func TestDecodeCopy(t *testing.T) {
	var r deliverRequest
	fillEvery(t, reflect.ValueOf(&r.Message).Elem(), time.Unix(1796000000, 5))
	js, _ := json.Marshal(r.Message)
	for name, data := range map[string][]byte{"binary": encodeRequest(&deliverRequest{Message: r.Message}), "json": js} {
		m, err := decodeCopy(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sameEvery(t, reflect.ValueOf(r.Message), reflect.ValueOf(m), name)
	}
}
