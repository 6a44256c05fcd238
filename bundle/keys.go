package bundle

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/tmbox/tmbox/catalog"
)

// PEM block types of bundle signing keys.
const (
	privateKeyPEMType = "PRIVATE KEY"
	publicKeyPEMType  = "PUBLIC KEY"
)

// MaxKeyFileSize is the largest key file ReadPublicKeyFile and
// ReadPrivateKeyFile read (a PEM ed25519 key is about 120 bytes).
const MaxKeyFileSize = 64 << 10

// ReadPublicKeyFile reads and parses a PEM "PUBLIC KEY" file (see
// ParsePublicKey), refusing a file larger than MaxKeyFileSize without
// reading all of it. Errors name the file.
func ReadPublicKeyFile(path string) (ed25519.PublicKey, error) {
	data, err := catalog.ReadLimited(path, MaxKeyFileSize)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	k, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// ReadPrivateKeyFile reads and parses a PEM "PRIVATE KEY" file (see
// ParsePrivateKey), refusing a file larger than MaxKeyFileSize without
// reading all of it. Errors name the file.
func ReadPrivateKeyFile(path string) (ed25519.PrivateKey, error) {
	data, err := catalog.ReadLimited(path, MaxKeyFileSize)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	k, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// GenerateSigningKey returns a new ed25519 key for signing bundles.
func GenerateSigningKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	return priv, nil
}

// MarshalPrivateKey encodes a signing key as a PEM "PRIVATE KEY" block
// (PKCS #8).
func MarshalPrivateKey(k ed25519.PrivateKey) ([]byte, error) {
	if len(k) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("marshal private key: %d bytes, want %d", len(k), ed25519.PrivateKeySize)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: privateKeyPEMType, Bytes: der}), nil
}

// MarshalPublicKey encodes a verification key as a PEM "PUBLIC KEY" block
// (PKIX).
func MarshalPublicKey(k ed25519.PublicKey) ([]byte, error) {
	if len(k) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("marshal public key: %d bytes, want %d", len(k), ed25519.PublicKeySize)
	}
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: publicKeyPEMType, Bytes: der}), nil
}

// ParsePrivateKey decodes a PEM "PRIVATE KEY" block (PKCS #8) holding an
// ed25519 key.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	return parseKey[ed25519.PrivateKey](data, privateKeyPEMType, "private", x509.ParsePKCS8PrivateKey)
}

// ParsePublicKey decodes a PEM "PUBLIC KEY" block (PKIX) holding an ed25519
// key.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	return parseKey[ed25519.PublicKey](data, publicKeyPEMType, "public", x509.ParsePKIXPublicKey)
}

// parseKey decodes the PEM block of pemType in data with parse and
// requires a key of type K; errors say which (what) key.
func parseKey[K any](data []byte, pemType, what string, parse func([]byte) (any, error)) (K, error) {
	var zero K
	der, err := pemBlock(data, pemType)
	if err != nil {
		return zero, fmt.Errorf("parse %s key: %w", what, err)
	}
	k, err := parse(der)
	if err != nil {
		return zero, fmt.Errorf("parse %s key: %w", what, err)
	}
	key, ok := k.(K)
	if !ok {
		return zero, fmt.Errorf("parse %s key: a %T, want ed25519", what, k)
	}
	return key, nil
}

// pemBlock returns the bytes of the first PEM block, which must have type
// typ.
func pemBlock(data []byte, typ string) ([]byte, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM block")
	}
	if b.Type != typ {
		return nil, fmt.Errorf("PEM block is %q, want %q", b.Type, typ)
	}
	return b.Bytes, nil
}
