package settings

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"strings"

	"github.com/tmbox/tmbox/catalog"
)

// MaxFileSize is the largest file a setting may name, in bytes.
const MaxFileSize int64 = 1 << 20

// Resolved are settings with the contents of the files they name, as
// Load read and checked them.
type Resolved struct {
	// Settings are the settings the files came from.
	Settings Settings
	// TLSCert and TLSKey are the PEM certificate (chain) and key of
	// Settings.TLS, nil without it.
	TLSCert, TLSKey []byte
	// PullSecret is the Docker config JSON of Registry.PullSecret.
	PullSecret []byte
	// CA is the PEM bundle of Registry.CAFile.
	CA []byte
}

// Load validates s and reads the files it names, each a regular file of
// at most MaxFileSize bytes (a named pipe, device or directory is refused
// without being read): the TLS certificate and key must parse and match
// (crypto/tls.X509KeyPair); the pull secret must be Docker config JSON
// ({"auths": {HOST: {"auth": base64 of USER:PASSWORD} or {"username",
// "password"}}}, every HOST a registry host, optionally with a scheme);
// the CA file must hold PEM certificates only, at least one. Errors are
// *Error naming the setting and the file, joined.
func Load(s Settings) (*Resolved, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	r := &Resolved{Settings: s}
	var l errorList
	if t := s.TLS; t != nil {
		cert, certErr := readFile(Root+".tls.certFile", t.CertFile)
		key, keyErr := readFile(Root+".tls.keyFile", t.KeyFile)
		if certErr != nil {
			l = append(l, certErr)
		}
		if keyErr != nil {
			l = append(l, keyErr)
		}
		if certErr == nil && keyErr == nil {
			if err := checkKeyPair(cert, key, t.CertFile, t.KeyFile); err != nil {
				l.Wrap(Root+".tls", err)
			} else {
				r.TLSCert, r.TLSKey = cert, key
			}
		}
	}
	if reg := s.Registry; reg != nil {
		if reg.PullSecret != "" {
			path := Root + ".registry.pullSecret"
			data, err := readFile(path, reg.PullSecret)
			switch {
			case err != nil:
				l = append(l, err)
			default:
				if err := checkDockerConfig(data); err != nil {
					l.Add(path, "%s is not Docker config JSON: %w", reg.PullSecret, err)
				} else {
					r.PullSecret = data
				}
			}
		}
		if reg.CAFile != "" {
			path := Root + ".registry.caFile"
			data, err := readFile(path, reg.CAFile)
			switch {
			case err != nil:
				l = append(l, err)
			default:
				if err := checkCABundle(data); err != nil {
					l.Add(path, "%s: %w", reg.CAFile, err)
				} else {
					r.CA = data
				}
			}
		}
	}
	if err := l.Join(); err != nil {
		return nil, err
	}
	return r, nil
}

// readFile reads the file a setting names, as an *Error of the setting.
func readFile(path, file string) ([]byte, error) {
	data, err := catalog.ReadLimited(file, MaxFileSize)
	if err != nil {
		return nil, &Error{Path: path, Err: err} // ReadLimited names the file
	}
	return data, nil
}

// checkKeyPair checks the certificate and key parse and belong together.
func checkKeyPair(cert, key []byte, certFile, keyFile string) error {
	if err := pemOnly(cert, "CERTIFICATE"); err != nil {
		return fmt.Errorf("certificate %s: %w", certFile, err)
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return fmt.Errorf("certificate %s and key %s: %w", certFile, keyFile, err)
	}
	if len(pair.Certificate) == 0 {
		return fmt.Errorf("certificate %s holds no certificate", certFile)
	}
	return nil
}

// pemOnly checks data holds at least one PEM block and only blocks of
// type want (text around the blocks, as openssl writes, is ignored).
func pemOnly(data []byte, want string) error {
	n := 0
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != want {
			return fmt.Errorf("holds a PEM block of type %s: want only %s blocks", catalog.QuoteShort(b.Type), want)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("holds no PEM %s block", want)
	}
	return nil
}

// checkCABundle checks data is PEM certificates only, at least one, each
// parsing as X.509.
func checkCABundle(data []byte) error {
	if err := pemOnly(data, "CERTIFICATE"); err != nil {
		return err
	}
	rest := data
	for i := 1; ; i++ {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %w", i, err)
		}
	}
}

// dockerConfig is the part of a Docker config JSON file kubelet reads.
type dockerConfig struct {
	Auths map[string]dockerAuth `json:"auths"`
}

// dockerAuth is one registry's credentials.
type dockerAuth struct {
	Auth     string `json:"auth"`
	Username string `json:"username"`
	Password string `json:"password"`
}

// checkDockerConfig checks data is a Docker config JSON file with
// credentials for at least one registry, each registry a valid host with
// "auth" (base64 of USER:PASSWORD) or username and password.
func checkDockerConfig(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	if _, ok := raw["auths"]; !ok {
		return fmt.Errorf(`no "auths" (want {"auths": {"HOST": {"auth": "…"}}})`)
	}
	var c dockerConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return fmt.Errorf(`"auths": %w`, err)
	}
	if len(c.Auths) == 0 {
		return fmt.Errorf(`"auths" is empty`)
	}
	for _, host := range sortedKeys(c.Auths) {
		a := c.Auths[host]
		if err := validAuthHost(host); err != nil {
			return fmt.Errorf("auths: %w", err)
		}
		switch {
		case a.Auth != "":
			dec, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return fmt.Errorf("auths %s: auth is not base64: %w", catalog.QuoteShort(host), err)
			}
			if user, _, ok := strings.Cut(string(dec), ":"); !ok || user == "" {
				return fmt.Errorf("auths %s: auth is not base64 of USER:PASSWORD", catalog.QuoteShort(host))
			}
		case a.Username != "" && a.Password != "":
		case a.Username != "" || a.Password != "":
			return fmt.Errorf("auths %s: needs both username and password", catalog.QuoteShort(host))
		default:
			return fmt.Errorf("auths %s: no credentials (auth, or username and password); a file whose credentials are kept by a credential helper (credsStore, credHelpers) has none to give", catalog.QuoteShort(host))
		}
	}
	return nil
}

// validAuthHost checks a key of "auths": a registry host with an
// optional path, optionally written as an http(s) URL (as docker login
// writes Docker Hub's, https://index.docker.io/v1/), optionally with a
// leading "*." wildcard label (kubelet matches those).
func validAuthHost(key string) error {
	h := key
	for _, scheme := range []string{"https://", "http://"} {
		h = strings.TrimPrefix(h, scheme)
	}
	h = strings.TrimSuffix(h, "/")
	if rest, ok := strings.CutPrefix(h, "*."); ok {
		h = "wildcard." + rest
	}
	if err := catalog.ValidRegistryHost(h); err != nil {
		return fmt.Errorf("%s is not a registry: %w", catalog.QuoteShort(key), err)
	}
	return nil
}
