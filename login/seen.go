package login

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/smsbridge/bridge/login/ssoticket"
)

// SeenFile is an ssoticket.ReplayCache kept in a file, for `bridge sso
// verify --seen FILE`: the ids of accepted tickets, each until its expiry,
// so a ticket verified once is refused as replayed by any later verifier
// process using the same file. Concurrent processes take an exclusive
// flock on FILE.lock (left in place) around read-check-write, and the new
// content replaces FILE by rename after an fsync, so a crash leaves the old
// or the new list, never a torn one.
//
// Format (text, one ticket a line, written sorted by nothing in particular):
//
//	# bridge sso seen v1
//	<jti> SP <until, decimal Unix seconds> LF
//
// Lines starting with '#' are comments. Expired lines are dropped at each
// write. A file that does not parse makes every check fail rather than
// forget what it held.
type SeenFile struct {
	Path string
	Now  func() time.Time // nil = time.Now
}

const (
	seenHeader  = "# bridge sso seen v1\n"
	maxSeenFile = 64 << 20
)

var errBadSeen = errors.New("malformed seen file")

type seenEntry struct {
	id    string
	until int64 // Unix seconds
}

// parseSeen reads the file format above.
func parseSeen(data []byte) ([]seenEntry, error) {
	var out []seenEntry
	for n := 1; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		id, num, ok := bytes.Cut(line, []byte{' '})
		u, err := strconv.ParseInt(string(num), 10, 64)
		if !ok || !ssoticket.ValidTicketID(string(id)) || err != nil || u <= 0 || string(num) != strconv.FormatInt(u, 10) {
			return nil, fmt.Errorf("%w: line %d", errBadSeen, n)
		}
		out = append(out, seenEntry{id: string(id), until: u})
	}
	return out, nil
}

func formatSeen(es []seenEntry) []byte {
	b := []byte(seenHeader)
	for _, e := range es {
		b = append(b, e.id...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, e.until, 10)
		b = append(b, '\n')
	}
	return b
}

// Seen implements ssoticket.ReplayCache.
func (f SeenFile) Seen(id string, until time.Time) (bool, error) {
	if !ssoticket.ValidTicketID(id) {
		return false, fmt.Errorf("seen file: ticket id %q", id)
	}
	now := time.Now
	if f.Now != nil {
		now = f.Now
	}
	unlock, err := lockFile(f.Path + ".lock")
	if err != nil {
		return false, fmt.Errorf("seen file: %w", err)
	}
	defer unlock()

	data, err := readLimited(f.Path)
	if err != nil {
		return false, fmt.Errorf("seen file: %w", err)
	}
	es, err := parseSeen(data)
	if err != nil {
		return false, fmt.Errorf("seen file %s: %w", f.Path, err)
	}
	t := now().Unix()
	keep := es[:0]
	for _, e := range es {
		if e.id == id && t < e.until {
			return true, nil
		}
		if t < e.until && e.id != id {
			keep = append(keep, e)
		}
	}
	u := until.Unix()
	if until.After(time.Unix(u, 0)) {
		u++
	}
	keep = append(keep, seenEntry{id: id, until: u})
	if err := writeAtomic(f.Path, formatSeen(keep)); err != nil {
		return false, fmt.Errorf("seen file: %w", err)
	}
	return false, nil
}

func readLimited(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxSeenFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSeenFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxSeenFile)
	}
	return data, nil
}

// writeAtomic replaces path with data: a temporary file, fsync, rename,
// fsync of the directory. The caller holds the lock, so the temporary name
// is never used twice at once.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	fh, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := fh.Write(data); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
