package directory

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
			return nil, fmt.Errorf("directory: read csv: %w", err)
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

// ImportCSV creates or replaces the users in r (see ParseCSV) as PutUser
// does. It is all or nothing for bad input: every line is validated,
// against the others and against existing users, before anything is
// written; the first problems are reported with their line numbers. An
// empty password keeps an existing user's credential. n is the number of
// users written.
func (d *Directory) ImportCSV(ctx context.Context, r io.Reader) (n int, err error) {
	rows, err := ParseCSV(r)
	if err != nil {
		return 0, err
	}
	type change struct{ old, r *rec }
	d.wmu.Lock()
	defer d.wmu.Unlock()

	changes := make([]change, 0, len(rows))
	var problems []string
	byName := map[string]int{}
	byAddr := map[string]int{}
	st := d.static.Load()
	for _, row := range rows {
		if len(problems) >= 10 {
			problems = append(problems, "…")
			break
		}
		u, old, err := d.importRow(st, row.Spec)
		if err != nil {
			problems = append(problems, fmt.Sprintf("line %d: %s", row.Line, strings.TrimPrefix(strings.TrimPrefix(err.Error(), "directory: "), "invalid: ")))
			continue
		}
		if l, dup := byName[u.name()]; dup {
			problems = append(problems, fmt.Sprintf("line %d: user %q already on line %d", row.Line, u.name(), l))
			continue
		}
		dup := ""
		for _, a := range u.all() {
			if l, ok := byAddr[string(a)]; ok {
				what := "address"
				if a.IsMSISDN() {
					what = "msisdn"
				}
				dup = fmt.Sprintf("line %d: %s %s already on line %d", row.Line, what, a, l)
				break
			}
		}
		if dup != "" {
			problems = append(problems, dup)
			continue
		}
		byName[u.name()] = row.Line
		for _, a := range u.all() {
			byAddr[string(a)] = row.Line
		}
		changes = append(changes, change{old, u})
	}
	if len(problems) > 0 {
		return 0, fmt.Errorf("%w: csv: %s", ErrInvalid, strings.Join(problems, "; "))
	}
	// Lines are checked against the users as they were before the import,
	// so moving a number from one existing user to another takes two
	// imports (or a PUT); it is refused here rather than half applied.

	ok := make([]bool, len(changes))
	var mu sync.Mutex
	werr := parallel(len(changes), func(i int) error {
		if err := d.putUser(ctx, changes[i].r); err != nil {
			return err
		}
		mu.Lock()
		ok[i] = true
		mu.Unlock()
		return nil
	})
	for i, c := range changes {
		if ok[i] {
			d.replace(c.old, c.r)
			n++
		}
	}
	for i, c := range changes {
		if ok[i] {
			d.notify(c.r.name())
		}
	}
	if werr != nil {
		return n, fmt.Errorf("directory: import wrote %d of %d users: %w", n, len(changes), werr)
	}
	d.log.Info("users imported", "count", n)
	return n, nil
}

// importRow builds one line's user as PutUser would. Callers hold wmu.
func (d *Directory) importRow(st *staticSet, spec UserSpec) (r, old *rec, err error) {
	name, err := NormalizeName(spec.Name)
	if err != nil {
		return nil, nil, err
	}
	if _, ok := st.byName[name]; ok {
		return nil, nil, fmt.Errorf("%w: user %q", ErrStatic, name)
	}
	old, _ = d.get(name)
	if old == nil {
		if _, err := normalizeLocalName(name); err != nil {
			return nil, nil, err
		}
	}
	r, err = d.build(name, spec, old)
	if err == nil {
		err = d.check(r, old)
	}
	return r, old, err
}
