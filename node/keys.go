package node

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/auditledger/ledgerd/ledger"
)

// Keys are the node's signing keys.
type Keys struct {
	Signer      note.Signer
	SignerKey   string // PRIVATE+KEY+... (handed to joining nodes)
	VerifierKey string // name+hash+base64key, published to auditors
	HMAC        *ledger.Keyring
	HMACKey     []byte // current HMAC key (handed to joining nodes)
}

// File names under the data directory.
const (
	CheckpointKeyFile = "checkpoint.key"
	VerifierKeyFile   = "checkpoint.pub"
	HMACKeyFile       = "hmac.key"
)

// LoadKeys finds or creates the node's keys: environment first, then the
// configured files, then DATA_DIR, where missing keys are generated
// (mode 0600). created lists what was generated.
func LoadKeys(cfg *Config) (k *Keys, created []string, err error) {
	k = &Keys{}
	skey := os.Getenv("LEDGER_CHECKPOINT_KEY")
	if skey == "" {
		path := cfg.Keys.CheckpointKeyFile
		if path == "" {
			path = filepath.Join(cfg.DataDir, CheckpointKeyFile)
		}
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			skey = strings.TrimSpace(string(b))
		case errors.Is(err, fs.ErrNotExist) && cfg.Keys.CheckpointKeyFile == "":
			skey, _, err = note.GenerateKey(rand.Reader, keyName(cfg.Origin))
			if err != nil {
				return nil, nil, fmt.Errorf("keys: generate checkpoint key: %w", err)
			}
			if err := writeSecret(path, []byte(skey+"\n")); err != nil {
				return nil, nil, err
			}
			created = append(created, path)
		default:
			return nil, nil, fmt.Errorf("keys: checkpoint key: %w", err)
		}
	}
	if err := k.setSigner(skey); err != nil {
		return nil, nil, err
	}
	if len(created) > 0 {
		_ = os.WriteFile(filepath.Join(cfg.DataDir, VerifierKeyFile), []byte(k.VerifierKey+"\n"), 0o644)
	}

	hkey := []byte(os.Getenv("AUDIT_SIGNING_KEY"))
	if len(hkey) == 0 {
		path := cfg.Keys.HMACKeyFile
		if path == "" {
			path = filepath.Join(cfg.DataDir, HMACKeyFile)
		}
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			hkey = bytes.TrimRight(b, "\r\n")
		case errors.Is(err, fs.ErrNotExist) && cfg.Keys.HMACKeyFile == "":
			raw := make([]byte, 32)
			rand.Read(raw)
			hkey = []byte(hex.EncodeToString(raw))
			if err := writeSecret(path, append(bytes.Clone(hkey), '\n')); err != nil {
				return nil, nil, err
			}
			created = append(created, path)
		default:
			return nil, nil, fmt.Errorf("keys: HMAC key: %w", err)
		}
	}
	var old [][]byte
	for _, p := range cfg.Keys.HMACOldKeyFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, fmt.Errorf("keys: old HMAC key: %w", err)
		}
		old = append(old, bytes.TrimRight(b, "\r\n"))
	}
	if k.HMAC, err = ledger.NewKeyring(hkey, old...); err != nil {
		return nil, nil, fmt.Errorf("keys: %w", err)
	}
	k.HMACKey = hkey
	return k, created, nil
}

// setSigner parses a note signer key and derives its verifier key.
func (k *Keys) setSigner(skey string) error {
	s, err := note.NewSigner(skey)
	if err != nil {
		return fmt.Errorf("keys: checkpoint key: %w", err)
	}
	vkey, err := VerifierKey(skey)
	if err != nil {
		return err
	}
	k.Signer, k.SignerKey, k.VerifierKey = s, skey, vkey
	return nil
}

// VerifierKey derives the note verifier key from an Ed25519 note signer
// key (PRIVATE+KEY+name+hash+base64(0x01||seed)).
func VerifierKey(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", fmt.Errorf("keys: checkpoint key is not a note signer key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", fmt.Errorf("keys: checkpoint key is not an Ed25519 note key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[2], pub)
}

// keyName turns an origin into a note key name (no spaces or '+').
func keyName(origin string) string {
	name := strings.Map(func(r rune) rune {
		if r == '+' || r == ' ' || r == '\t' || r == '\n' {
			return '-'
		}
		return r
	}, origin)
	if name == "" {
		name = "ledgerd"
	}
	return name
}

func writeSecret(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("keys: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("keys: sync %s: %w", path, err)
	}
	return f.Close()
}

// DefaultOrigin derives a checkpoint origin from the host name.
func DefaultOrigin() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "localhost"
	}
	return keyName(h) + "/ledgerd"
}
