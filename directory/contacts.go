package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
	"github.com/smsbridge/bridge/store"
)

// Contact is one real person in a user's address book, with the addresses
// it has across networks (canonical, as ParseAddress returns). Within one
// user's book an address belongs to at most one contact.
type Contact struct {
	ID        string        `json:"id"`
	Display   string        `json:"display,omitempty"`
	Addresses []msg.Address `json:"addresses"`
}

// contactBook is the stored form of a user's contacts, "dir/c/<name>".
type contactBook struct {
	Next     int       `json:"next"` // the counter of assigned IDs "c<n>"
	Contacts []Contact `json:"contacts"`
}

const maxContactID = 64

func validContactID(id string) error {
	if id == "" || len(id) > maxContactID {
		return invalid("contact id %q must be 1 to %d characters", id, maxContactID)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return invalid("contact id %q: character %s is not allowed", id, describeRune(rune(c)))
		}
	}
	return nil
}

// readBook reads name's contacts (an empty book if none).
func (d *Directory) readBook(name string) (contactBook, error) {
	var b contactBook
	v, err := d.kv.Get([]byte(prefixContacts + name))
	if errors.Is(err, store.ErrNotFound) {
		return b, nil
	}
	if err != nil {
		return b, fmt.Errorf("directory: read contacts of %s: %w", name, err)
	}
	if err := json.Unmarshal(v, &b); err != nil {
		return b, fmt.Errorf("directory: contacts of %s are unreadable: %w", name, err)
	}
	return b, nil
}

func (d *Directory) writeBook(ctx context.Context, name string, b contactBook) error {
	v, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("directory: encode contacts of %s: %w", name, err)
	}
	if err := d.kv.Put(ctx, []byte(prefixContacts+name), v); err != nil {
		return fmt.Errorf("directory: write contacts of %s: %w", name, err)
	}
	return nil
}

// Contacts returns user name's contacts (a static user has none).
func (d *Directory) Contacts(name string) ([]Contact, error) {
	n, err := NormalizeName(name)
	if err != nil {
		return nil, err
	}
	r, static := d.get(n)
	switch {
	case r == nil:
		return nil, fmt.Errorf("%w: user %q", ErrNotFound, n)
	case static:
		return []Contact{}, nil
	}
	b, err := d.readBook(n)
	if err != nil {
		return nil, err
	}
	if b.Contacts == nil {
		b.Contacts = []Contact{}
	}
	return b.Contacts, nil
}

// editBook runs fn on name's contacts under the write lock and stores the
// result if fn returns nil; watchers hear of it.
func (d *Directory) editBook(ctx context.Context, name string, fn func(b *contactBook) error) error {
	n, err := NormalizeName(name)
	if err != nil {
		return err
	}
	if _, ok := d.static.Load().byName[n]; ok {
		return fmt.Errorf("%w: user %q", ErrStatic, n)
	}
	d.wmu.Lock()
	err = func() error {
		if r, _ := d.get(n); r == nil {
			return fmt.Errorf("%w: user %q", ErrNotFound, n)
		}
		b, err := d.readBook(n)
		if err != nil {
			return err
		}
		if err := fn(&b); err != nil {
			return err
		}
		return d.writeBook(ctx, n, b)
	}()
	d.wmu.Unlock()
	switch {
	case errors.Is(err, errUnchanged):
		return nil
	case err == nil:
		d.notify(n)
	}
	return err
}

// errUnchanged tells editBook that there is nothing to write.
var errUnchanged = errors.New("unchanged")

// cleanContact validates c and canonicalizes its addresses (duplicates
// dropped).
func (d *Directory) cleanContact(c Contact) (Contact, error) {
	out := Contact{ID: c.ID, Display: strings.TrimSpace(c.Display)}
	if len(out.Display) > MaxDisplayLen {
		return Contact{}, invalid("display name is longer than %d bytes", MaxDisplayLen)
	}
	if !utf8.ValidString(out.Display) {
		return Contact{}, invalid("display name is not valid UTF-8")
	}
	out.Addresses = make([]msg.Address, 0, len(c.Addresses))
	for _, a := range c.Addresses {
		ca, err := d.ParseAddress(string(a))
		if err != nil {
			return Contact{}, err
		}
		if !slices.Contains(out.Addresses, ca) {
			out.Addresses = append(out.Addresses, ca)
		}
	}
	if len(out.Addresses) > MaxContactAddr {
		return Contact{}, invalid("a contact has at most %d addresses", MaxContactAddr)
	}
	return out, nil
}

// heldElsewhere reports an address of c another contact in b holds.
func heldElsewhere(b *contactBook, c Contact) error {
	for _, o := range b.Contacts {
		if o.ID == c.ID {
			continue
		}
		for _, a := range c.Addresses {
			if slices.Contains(o.Addresses, a) {
				return fmt.Errorf("%w: %s is an address of contact %s", ErrExists, a, o.ID)
			}
		}
	}
	return nil
}

func findContact(b *contactBook, id string) int {
	return slices.IndexFunc(b.Contacts, func(c Contact) bool { return c.ID == id })
}

// PutContact creates (ID "": an ID is assigned; an unknown ID: created with
// it) or replaces a contact of user name. created tells which.
func (d *Directory) PutContact(ctx context.Context, name string, c Contact) (Contact, bool, error) {
	if c.ID != "" {
		if err := validContactID(c.ID); err != nil {
			return Contact{}, false, err
		}
	}
	c, err := d.cleanContact(c)
	if err != nil {
		return Contact{}, false, err
	}
	created := false
	err = d.editBook(ctx, name, func(b *contactBook) error {
		if c.ID == "" {
			for {
				b.Next++
				c.ID = "c" + strconv.Itoa(b.Next)
				if findContact(b, c.ID) < 0 {
					break
				}
			}
		}
		if err := heldElsewhere(b, c); err != nil {
			return err
		}
		if i := findContact(b, c.ID); i >= 0 {
			b.Contacts[i] = c
			return nil
		}
		if len(b.Contacts) >= MaxContacts {
			return invalid("a user has at most %d contacts", MaxContacts)
		}
		b.Contacts = append(b.Contacts, c)
		created = true
		return nil
	})
	if err != nil {
		return Contact{}, false, err
	}
	return c, created, nil
}

// DeleteContact removes contact id of user name.
func (d *Directory) DeleteContact(ctx context.Context, name, id string) error {
	return d.editBook(ctx, name, func(b *contactBook) error {
		i := findContact(b, id)
		if i < 0 {
			return fmt.Errorf("%w: contact %q", ErrNotFound, id)
		}
		b.Contacts = slices.Delete(b.Contacts, i, i+1)
		return nil
	})
}

// BindContact adds addr to contact id of user name (ErrExists if another
// of the user's contacts has it; nothing changes if this one has).
func (d *Directory) BindContact(ctx context.Context, name, id string, addr msg.Address) (Contact, error) {
	a, err := d.ParseAddress(string(addr))
	if err != nil {
		return Contact{}, err
	}
	var out Contact
	err = d.editBook(ctx, name, func(b *contactBook) error {
		i := findContact(b, id)
		if i < 0 {
			return fmt.Errorf("%w: contact %q", ErrNotFound, id)
		}
		c := b.Contacts[i]
		out = c
		if slices.Contains(c.Addresses, a) {
			return errUnchanged
		}
		if len(c.Addresses) >= MaxContactAddr {
			return invalid("a contact has at most %d addresses", MaxContactAddr)
		}
		c.Addresses = append(slices.Clone(c.Addresses), a)
		if err := heldElsewhere(b, c); err != nil {
			return err
		}
		b.Contacts[i] = c
		out = c
		return nil
	})
	return out, err
}

// UnbindContact removes addr from contact id of user name (ErrNotFound if
// the contact does not have it).
func (d *Directory) UnbindContact(ctx context.Context, name, id string, addr msg.Address) (Contact, error) {
	a, err := d.ParseAddress(string(addr))
	if err != nil {
		return Contact{}, err
	}
	var out Contact
	err = d.editBook(ctx, name, func(b *contactBook) error {
		i := findContact(b, id)
		if i < 0 {
			return fmt.Errorf("%w: contact %q", ErrNotFound, id)
		}
		c := b.Contacts[i]
		j := slices.Index(c.Addresses, a)
		if j < 0 {
			return fmt.Errorf("%w: contact %q has no address %s", ErrNotFound, id, a)
		}
		c.Addresses = slices.Delete(slices.Clone(c.Addresses), j, j+1)
		b.Contacts[i] = c
		out = c
		return nil
	})
	return out, err
}

// Where lists where contact c is online: the live bindings, by bindings
// (presence.Store.Bindings), of each of its addresses or, for an address of
// one of the directory's users, of each of that user's endpoints.
func (d *Directory) Where(c Contact, bindings func(msg.Address) []presence.Binding) []presence.Binding {
	var out []presence.Binding
	seen := make(map[msg.Address]bool, len(c.Addresses))
	for _, a := range c.Addresses {
		eps := []msg.Address{a}
		if p, ok := d.Resolve(a); ok {
			eps = p.Endpoints
		}
		for _, ep := range eps {
			if !seen[ep] {
				seen[ep] = true
				out = append(out, bindings(ep)...)
			}
		}
	}
	return out
}
