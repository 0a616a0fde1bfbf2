package provision

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// MaxImportRows bounds one CSV import.
const MaxImportRows = 200_000

// CSVRow is one parsed user line and where it was.
type CSVRow struct {
	Line int
	Spec UserSpec
}

// ParseCSV reads users from CSV with the columns user,password,msisdn,display
// (msisdn and display may be left out or empty; a first line starting with
// "user" is a header; lines starting with "#" are comments). It checks the
// shape only; ImportCSV validates the values.
func ParseCSV(r io.Reader) ([]CSVRow, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	var rows []CSVRow
	first := true
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, invalid("csv line %d: %v", pe.Line, pe.Err)
			}
			return nil, fmt.Errorf("provision: read csv: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if first {
			first = false
			rec[0] = strings.TrimPrefix(rec[0], "\ufeff") // spreadsheet exports start with a BOM
			if strings.EqualFold(strings.TrimSpace(rec[0]), "user") {
				want := []string{"user", "password", "msisdn", "display"}
				for i, f := range rec {
					if i >= len(want) || !strings.EqualFold(strings.TrimSpace(f), want[i]) {
						return nil, invalid("csv line %d: header column %d is %q; want user,password,msisdn,display", line, i+1, f)
					}
				}
				continue
			}
		}
		if len(rec) < 2 || len(rec) > 4 {
			return nil, invalid("csv line %d: %d columns; want user,password[,msisdn[,display]]", line, len(rec))
		}
		if len(rows) >= MaxImportRows {
			return nil, invalid("csv line %d: more than %d users in one import", line, MaxImportRows)
		}
		sp := UserSpec{Name: strings.TrimSpace(rec[0]), Password: rec[1]}
		if len(rec) > 2 {
			sp.MSISDN = strings.TrimSpace(rec[2])
		}
		if len(rec) > 3 {
			sp.Display = strings.TrimSpace(rec[3])
		}
		rows = append(rows, CSVRow{Line: line, Spec: sp})
	}
	return rows, nil
}

// ImportCSV creates or replaces the users in r (see ParseCSV). It is all or
// nothing for bad input: every line is validated, against the others and
// against existing users, before anything is written; the first problems
// are reported with their line numbers. An empty password keeps an existing
// user's credential. n is the number of users written.
func (s *Store) ImportCSV(ctx context.Context, r io.Reader) (n int, err error) {
	rows, err := ParseCSV(r)
	if err != nil {
		return 0, err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()

	recs := make([]userRec, 0, len(rows))
	var problems []string
	byName := map[string]int{}
	byMSISDN := map[string]int{}
	s.mu.RLock()
	for _, row := range rows {
		if len(problems) >= 10 {
			problems = append(problems, "…")
			break
		}
		var oldp *userRec
		if n, err := NormalizeUserName(row.Spec.Name); err == nil {
			if old, ok := s.c.users[n]; ok {
				oldp = &old
			}
		}
		u, err := s.build(row.Spec, oldp)
		if err == nil {
			err = s.conflictLocked(u)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("line %d: %s", row.Line, strings.TrimPrefix(strings.TrimPrefix(err.Error(), "provision: "), "invalid: ")))
			continue
		}
		if l, dup := byName[u.Name]; dup {
			problems = append(problems, fmt.Sprintf("line %d: user %q already on line %d", row.Line, u.Name, l))
			continue
		}
		byName[u.Name] = row.Line
		if u.MSISDN != "" {
			if l, dup := byMSISDN[string(u.MSISDN)]; dup {
				problems = append(problems, fmt.Sprintf("line %d: msisdn %s already on line %d", row.Line, u.MSISDN, l))
				continue
			}
			byMSISDN[string(u.MSISDN)] = row.Line
		}
		recs = append(recs, u)
	}
	s.mu.RUnlock()
	if len(problems) > 0 {
		return 0, fmt.Errorf("%w: csv: %s", ErrInvalid, strings.Join(problems, "; "))
	}
	// Lines are checked against the users as they were before the import,
	// so moving an MSISDN from one existing user to another takes two
	// imports (or a PUT); it is refused here rather than half applied.

	// Parallel writes let the store's group commit share fsyncs.
	const workers = 32
	ok := make([]bool, len(recs))
	var wg sync.WaitGroup
	var errOnce sync.Once
	var firstErr error
	next := make(chan int)
	for range min(workers, len(recs)) {
		wg.Go(func() {
			for i := range next {
				if err := s.put(ctx, prefixUser+recs[i].Name, recs[i]); err != nil {
					errOnce.Do(func() { firstErr = err })
					continue
				}
				ok[i] = true
			}
		})
	}
	for i := range recs {
		next <- i
	}
	close(next)
	wg.Wait()
	s.mu.Lock()
	for i, u := range recs {
		if ok[i] {
			s.c.dropUser(u.Name)
			s.c.addUser(u)
			n++
		}
	}
	s.mu.Unlock()
	s.changed()
	if firstErr != nil {
		return n, fmt.Errorf("provision: import wrote %d of %d users: %w", n, len(recs), firstErr)
	}
	s.log.Info("users imported", "count", n)
	return n, nil
}
