package smstext

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestFormatReceipt(t *testing.T) {
	r := Receipt{
		ID: "0A1B", Sub: 1, Dlvrd: 1,
		Submit: time.Date(2025, 3, 1, 9, 5, 0, 0, time.UTC),
		Done:   time.Date(2025, 3, 1, 9, 6, 59, 0, time.UTC),
		Stat:   "DELIVRD", Err: "0", Text: "Hello world, this is longer than twenty",
	}
	want := "id:0A1B sub:001 dlvrd:001 submit date:2503010905 done date:2503010906 stat:DELIVRD err:000 text:Hello world, this is"
	if got := FormatReceipt(r); got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	// Twenty characters, not bytes.
	r.Text = "这是一条很长的中文短信内容超过二十个字符了吧"
	got, _ := ParseReceipt(FormatReceipt(r))
	if got.Text != "这是一条很长的中文短信内容超过二十个字符" {
		t.Errorf("text = %q", got.Text)
	}
	if s := FormatReceipt(Receipt{ID: "x", Err: "12"}); s != "id:x sub:000 dlvrd:000 submit date:0000000000 done date:0000000000 stat: err:012 text:" {
		t.Errorf("empty receipt %q", s)
	}
}

func TestReceiptRoundTrip(t *testing.T) {
	in := Receipt{ID: "123456789", Sub: 1, Dlvrd: 0,
		Submit: time.Date(2024, 12, 31, 23, 59, 0, 0, time.UTC), Done: time.Date(2025, 1, 1, 0, 1, 0, 0, time.UTC),
		Stat: "UNDELIV", Err: "045", Text: "hi: there stat:x"}
	out, err := ParseReceipt(FormatReceipt(in))
	if err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Fatalf("round trip\n got %+v\nwant %+v", out, in)
	}
}

func TestParseReceiptVariants(t *testing.T) {
	d := func(y, mo, da, h, mi, s int) time.Time {
		return time.Date(y, time.Month(mo), da, h, mi, s, 0, time.UTC)
	}
	for _, tc := range []struct {
		name string
		in   string
		want Receipt
	}{
		{"spec", "id:7 sub:001 dlvrd:001 submit date:2503010905 done date:2503010906 stat:DELIVRD err:000 text:ok",
			Receipt{ID: "7", Sub: 1, Dlvrd: 1, Submit: d(2025, 3, 1, 9, 5, 0), Done: d(2025, 3, 1, 9, 6, 0), Stat: "DELIVRD", Err: "000", Text: "ok"}},
		{"upper keys, underscores, seconds", "ID:ab12 SUB:1 DLVRD:1 SUBMIT_DATE:250301090507 DONE_DATE:250301090608 STAT:delivrd ERR:0 TEXT:x y",
			Receipt{ID: "ab12", Sub: 1, Dlvrd: 1, Submit: d(2025, 3, 1, 9, 5, 7), Done: d(2025, 3, 1, 9, 6, 8), Stat: "DELIVRD", Err: "0", Text: "x y"}},
		{"any order, extra spaces", "  stat:EXPIRED   err:001  id: 99   done date:2503011200  ",
			Receipt{ID: "99", Done: d(2025, 3, 1, 12, 0, 0), Stat: "EXPIRED", Err: "001"}},
		{"text not last", "id:5 text:hello world stat:DELIVRD",
			Receipt{ID: "5", Stat: "DELIVRD", Text: "hello world"}},
		{"Text capitalised, no sub/dlvrd", "id:5 submit date:2503010905 done date:2503010906 stat:ACCEPTD err:000 Text:",
			Receipt{ID: "5", Submit: d(2025, 3, 1, 9, 5, 0), Done: d(2025, 3, 1, 9, 6, 0), Stat: "ACCEPTD", Err: "000"}},
		{"bad numbers and dates left zero", "id:1 sub:abc submit date:99999999 done date:2513450000 stat:REJECTD",
			Receipt{ID: "1", Stat: "REJECTD"}},
		{"unknown fields skipped", "id:1 foo:bar sub:002 dlvrd:002 extra stat:DELIVRD",
			Receipt{ID: "1", Sub: 2, Dlvrd: 2, Stat: "DELIVRD"}},
		{"space before colon, tab", "id : 42\tstat :ENROUTE",
			Receipt{ID: "42", Stat: "ENROUTE"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseReceipt(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	for _, in := range []string{"", "hello", "sub:001 stat:DELIVRD", "id: sub:001", "identity:5"} {
		if _, err := ParseReceipt(in); !errors.Is(err, ErrReceipt) {
			t.Errorf("ParseReceipt(%q) err = %v, want ErrReceipt", in, err)
		}
	}
}

func TestMessageIDs(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"0A1B", "2587", true},
		{"abc", "ABC", true},
		{"2587", "0a1b", true},
		{"000123", "123", true},
		{"ff", "255", true},
		{"10", "16", true}, // ambiguity accepted: hex 10 == 16
		{"10", "11", false},
		{"abc", "abd", false},
		{"0x1F", "31", true},
		{"uuid-1", "UUID-1", true},
		{"uuid-1", "uuid-2", false},
		{"", "", false},
		{"FFFFFFFFFFFFFFFFFFFF", "1208925819614629174706175", true}, // beyond 64 bits
	} {
		if got := SameMessageID(tc.a, tc.b); got != tc.same {
			t.Errorf("SameMessageID(%q, %q) = %v", tc.a, tc.b, got)
		}
		if got := SameMessageID(tc.b, tc.a); got != tc.same {
			t.Errorf("SameMessageID(%q, %q) = %v (not symmetric)", tc.b, tc.a, got)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"0A1B", "2587"}, {"2587", "2587"}, {"000123", "123"}, {"0", "0"}, {"000", "0"},
		{" AbC ", "2748"}, {"0x10", "16"}, {"Msg-ID", "msg-id"}, {"", ""},
	} {
		if got := NormalizeMessageID(tc.in); got != tc.want {
			t.Errorf("NormalizeMessageID(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if NormalizeMessageID("0A1B") != NormalizeMessageID("2587") {
		t.Error("hex and decimal forms normalize differently")
	}
}

func TestMessageState(t *testing.T) {
	for st, word := range map[byte]string{1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD"} {
		if got := MessageStateOf(word); got != st {
			t.Errorf("MessageStateOf(%q) = %d, want %d", word, got, st)
		}
		if got := StatOf(st); got != word {
			t.Errorf("StatOf(%d) = %q, want %q", st, got, word)
		}
	}
	if MessageStateOf("delivrd") != 2 || MessageStateOf(" Delivered ") != 2 || MessageStateOf("REJECTED") != 8 {
		t.Error("case/long forms not accepted")
	}
	if MessageStateOf("BOGUS") != 0 || StatOf(0) != "UNKNOWN" || StatOf(9) != "UNKNOWN" {
		t.Error("unknown values")
	}
}

// A receipt quoting Chinese text goes as UCS-2 within 254 octets, the quote
// shortened as far as needed and never cut inside a character; an ASCII
// quote stays GSM 7-bit and whole.
func TestEncodeReceiptFits(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	r := Receipt{ID: "1lhamslcn0hk00000001", Sub: 1, Dlvrd: 1, Submit: at, Done: at, Stat: "DELIVRD", Text: "我们明天上午十点在公司门口见面，请准时到达，谢谢大家"}
	dcs, body := EncodeReceipt(r, MaxReceiptOctets)
	if dcs != DCSUCS2 || len(body) > MaxReceiptOctets || len(body)%2 != 0 {
		t.Fatalf("dcs %d, %d octets", dcs, len(body))
	}
	text, err := Decode(dcs, body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseReceipt(text)
	if err != nil || got.ID != r.ID || got.Stat != "DELIVRD" {
		t.Fatalf("decoded %q: %+v %v", text, got, err)
	}
	if got.Text == "" || !strings.HasPrefix(r.Text, got.Text) || len([]rune(got.Text)) >= 20 {
		t.Fatalf("quote %q: want a shortened start of %q", got.Text, r.Text)
	}
	// One more character would not have fitted.
	longer := []rune(r.Text)[:len([]rune(got.Text))+1]
	if _, b, _ := Encode(FormatReceipt(Receipt{ID: r.ID, Sub: 1, Dlvrd: 1, Submit: at, Done: at, Stat: "DELIVRD", Text: string(longer)}), Auto); len(b) <= MaxReceiptOctets {
		t.Fatalf("quote shortened to %d characters; %d fit", len([]rune(got.Text)), len(longer))
	}
	r.Text = "hello, see you at ten tomorrow"
	dcs, body = EncodeReceipt(r, MaxReceiptOctets)
	if text, _ := Decode(dcs, body); dcs != DCSDefault || !strings.HasSuffix(text, "text:hello, see you at te") {
		t.Fatalf("ASCII quote: dcs %d %q", dcs, text)
	}
}
