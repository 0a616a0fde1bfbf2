package corpus

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"embed"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Captured traces (see capture/): each file holds the sessions of one
// family, a session being every message one user agent sent or received,
// in capture order. Format (gzip-compressed): a line "#<session> <length>\n"
// then exactly <length> bytes of the message, then "\n".
//
//go:embed traces/*.trace.gz
var traceFS embed.FS

func traceFamily(name string) func(seed uint64, n int) [][][]byte {
	return func(_ uint64, n int) [][][]byte {
		ss, err := Trace(name)
		if err != nil {
			panic(err)
		}
		if n < len(ss) {
			ss = ss[:n]
		}
		return ss
	}
}

// Trace returns the sessions of the captured trace name.
func Trace(name string) ([][][]byte, error) {
	f, err := traceFS.Open("traces/" + name + ".trace.gz")
	if err != nil {
		return nil, fmt.Errorf("corpus: trace %s: %w", name, err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("corpus: trace %s: %w", name, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("corpus: trace %s: %w", name, err)
	}
	return ParseTrace(b)
}

// ParseTrace reads the trace format.
func ParseTrace(b []byte) ([][][]byte, error) {
	var ss [][][]byte
	idx := map[int]int{}
	r := bufio.NewReader(bytes.NewReader(b))
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF && line == "" {
			return ss, nil
		}
		if err != nil {
			return nil, fmt.Errorf("corpus: trace header: %w", err)
		}
		f := strings.Fields(strings.TrimPrefix(line, "#"))
		if !strings.HasPrefix(line, "#") || len(f) != 2 {
			return nil, fmt.Errorf("corpus: bad trace header %q", line)
		}
		sess, err1 := strconv.Atoi(f[0])
		n, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil || n < 0 {
			return nil, fmt.Errorf("corpus: bad trace header %q", line)
		}
		msg := make([]byte, n+1)
		if _, err := io.ReadFull(r, msg); err != nil || msg[n] != '\n' {
			return nil, fmt.Errorf("corpus: truncated trace message")
		}
		i, ok := idx[sess]
		if !ok {
			i = len(ss)
			idx[sess] = i
			ss = append(ss, nil)
		}
		ss[i] = append(ss[i], msg[:n])
	}
}

// AppendTrace appends one message of session sess in the trace format.
func AppendTrace(dst []byte, sess int, msg []byte) []byte {
	dst = fmt.Appendf(dst, "#%d %d\n", sess, len(msg))
	dst = append(dst, msg...)
	return append(dst, '\n')
}
