package natsserver

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	natsconf "linkway/ops/nats"
)

// CredentialsFile is where, in the data folder, the embedded server's
// users and their passwords are kept (mode 0600).
const CredentialsFile = "nats-credentials"

// The users of accounts.conf the hub and its tools connect as.
const (
	// HubUser is `linkway hub` itself and the tools (rebuild, keys, orgs):
	// all of the LINKWAY account but deleting the log, audit or person keys.
	HubUser = "hub"
	// AdminUser is the break-glass operator: everything in the account.
	AdminUser = "operator"
)

// userVar pairs a user of accounts.conf with the variable its password
// comes from.
var userVar = regexp.MustCompile(`user:\s*([A-Za-z0-9_]+),\s*password:\s*\$(LW_NATS_PASSWORD_[A-Z0-9_]+)`)

// Users are the embedded server's users and their passwords.
type Users struct {
	// Path is the credentials file.
	Path      string
	passwords map[string]string
	vars      map[string]string // user -> password variable
}

// Password is a user's password ("" for no such user).
func (u *Users) Password(user string) string { return u.passwords[user] }

// Names lists the users, sorted.
func (u *Users) Names() []string {
	var out []string
	for n := range u.passwords {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// URL is the address of a server at addr ("host:port") with a user's
// credentials in it.
func (u *Users) URL(user, addr string) string {
	return (&url.URL{Scheme: "nats", User: url.UserPassword(user, u.passwords[user]), Host: addr}).String()
}

// Option connects as user (nats.UserInfo).
func (u *Users) Option(user string) nats.Option { return nats.UserInfo(user, u.passwords[user]) }

// config is accounts.conf with each password variable defined first, so
// the server resolves them from the config rather than the environment.
// Plain passwords are fine here: they never leave this process and the
// owner-only file, and bcrypt at every start would cost a second or more.
func (u *Users) config() string {
	var b strings.Builder
	for _, user := range u.Names() {
		fmt.Fprintf(&b, "%s: %s\n", u.vars[user], strconv.Quote(u.passwords[user]))
	}
	b.WriteString(natsconf.Accounts)
	return b.String()
}

// EnsureUsers reads the data folder's credentials file, making a password
// for every user of accounts.conf that has none (all of them on first
// start), and writes it back owner-only.
func EnsureUsers(dataDir string) (*Users, error) {
	u := &Users{Path: filepath.Join(dataDir, CredentialsFile), passwords: map[string]string{}, vars: map[string]string{}}
	b, err := os.ReadFile(u.Path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("NATS credentials: %w", err)
	}
	stored := parseCredentials(b)
	changed := false
	for _, m := range userVar.FindAllStringSubmatch(natsconf.Accounts, -1) {
		user := m[1]
		u.vars[user] = m[2]
		if pw, ok := stored[user]; ok {
			u.passwords[user] = pw
			continue
		}
		raw := make([]byte, 24)
		_, _ = rand.Read(raw)
		u.passwords[user] = base64.RawURLEncoding.EncodeToString(raw)
		changed = true
	}
	if len(u.passwords) == 0 {
		return nil, errors.New("NATS credentials: accounts.conf names no users")
	}
	if changed {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("NATS credentials: %w", err)
		}
		if err := writeFileAtomic(u.Path, u.file()); err != nil {
			return nil, fmt.Errorf("NATS credentials: %w", err)
		}
	}
	if err := os.Chmod(u.Path, 0o600); err != nil {
		return nil, fmt.Errorf("NATS credentials: %w", err)
	}
	return u, nil
}

// LoadUsers reads an existing credentials file (for tools that connect to
// a running hub); it does not make one.
func LoadUsers(dataDir string) (*Users, error) {
	path := filepath.Join(dataDir, CredentialsFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("NATS credentials: %w", err)
	}
	return &Users{Path: path, passwords: parseCredentials(b), vars: map[string]string{}}, nil
}

func (u *Users) file() []byte {
	var b bytes.Buffer
	b.WriteString(`# The users of Linkway's embedded NATS server and their passwords, made by
# the hub on first start. Keep this file private (mode 0600): these users can
# read and change everything the hub holds. Their permissions are those of
# ops/nats/accounts.conf. With --nats-listen HOST:PORT, connect as
#   nats://USER:PASSWORD@HOST:PORT
# (hub: what the hub itself may do; operator: everything). Delete a line and
# restart the hub to give that user a new password.
`)
	for _, user := range u.Names() {
		fmt.Fprintf(&b, "%s %s\n", user, u.passwords[user])
	}
	return b.Bytes()
}

func parseCredentials(b []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if f := strings.Fields(line); len(f) == 2 {
			out[f[0]] = f[1]
		}
	}
	return out
}

// writeFileAtomic writes a file owner-only through a temporary file and a
// rename, so a crash leaves the old file or the new, never half of one.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
