package settings

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	f := validFiles(t)
	s := Settings{
		TLS:      &TLS{CertFile: f.cert, KeyFile: f.key},
		Registry: &Registry{PullSecret: f.pullSecret, CAFile: f.ca},
	}
	r, err := Load(s)
	if err != nil {
		t.Fatal(err)
	}
	for name, pair := range map[string][2][]byte{
		"certificate": {r.TLSCert, f.certPEM},
		"key":         {r.TLSKey, f.keyPEM},
		"pull secret": {r.PullSecret, f.dockerConfig},
		"CA":          {r.CA, f.caPEM},
	} {
		if !bytes.Equal(pair[0], pair[1]) {
			t.Errorf("%s: read %q, want the file's contents", name, pair[0])
		}
	}
	if empty, err := Load(Settings{}); err != nil || empty.TLSCert != nil || empty.PullSecret != nil {
		t.Errorf("Load of no settings: %+v, %v", empty, err)
	}
}

func TestLoadErrors(t *testing.T) {
	f := validFiles(t)
	dir := t.TempDir()
	_, otherKey := keyPair(t, "other.example.com")
	mismatchedKey := writeFile(t, dir, "other.key", otherKey)
	notPEM := writeFile(t, dir, "not.pem", []byte("hello\n"))
	keyAsCA := writeFile(t, dir, "key-as-ca.pem", append(append([]byte{}, f.caPEM...), f.keyPEM...))
	big := writeFile(t, dir, "big.json", bytes.Repeat([]byte(" "), int(MaxFileSize)+1))
	subdir := filepath.Join(dir, "a-directory")
	if err := os.Mkdir(subdir, 0o755); err != nil {
		t.Fatal(err)
	}
	docker := func(name, content string) string { return writeFile(t, dir, name, []byte(content)) }

	tls := func(cert, key string) Settings { return Settings{TLS: &TLS{CertFile: cert, KeyFile: key}} }
	pull := func(p string) Settings { return Settings{Registry: &Registry{PullSecret: p}} }
	ca := func(p string) Settings { return Settings{Registry: &Registry{CAFile: p}} }

	tests := []struct {
		name string
		s    Settings
		want []string
	}{
		{"key of another certificate", tls(f.cert, mismatchedKey),
			[]string{"platform.tls: certificate " + f.cert + " and key " + mismatchedKey + ": tls: private key does not match public key"}},
		{"certificate not PEM", tls(notPEM, f.key),
			[]string{"platform.tls: certificate " + notPEM + ": holds no PEM CERTIFICATE block"}},
		{"key where the certificate belongs", tls(f.key, f.key),
			[]string{`platform.tls: certificate ` + f.key + `: holds a PEM block of type "PRIVATE KEY": want only CERTIFICATE blocks`}},
		{"missing files", tls(filepath.Join(dir, "nope.crt"), filepath.Join(dir, "nope.key")),
			[]string{"platform.tls.certFile: lstat " + filepath.Join(dir, "nope.crt"), "platform.tls.keyFile: lstat " + filepath.Join(dir, "nope.key")}},
		{"directory instead of a file", tls(subdir, f.key),
			[]string{"platform.tls.certFile: " + subdir + " is a directory: tmbox reads only regular files"}},
		{"pull secret not JSON", pull(notPEM),
			[]string{"platform.registry.pullSecret: " + notPEM + " is not Docker config JSON: not a JSON object"}},
		{"pull secret without auths", pull(docker("no-auths.json", `{"credsStore": "desktop"}`)),
			[]string{`is not Docker config JSON: no "auths"`}},
		{"pull secret with credentials in a helper", pull(docker("helper.json", `{"auths": {"registry.internal": {}}, "credsStore": "desktop"}`)),
			[]string{`auths "registry.internal": no credentials (auth, or username and password)`}},
		{"pull secret auth not base64", pull(docker("b64.json", `{"auths": {"registry.internal": {"auth": "%%%"}}}`)),
			[]string{`auths "registry.internal": auth is not base64`}},
		{"pull secret auth without a colon", pull(docker("colon.json", `{"auths": {"registry.internal": {"auth": "dXNlcg=="}}}`)),
			[]string{`auths "registry.internal": auth is not base64 of USER:PASSWORD`}},
		{"pull secret username without password", pull(docker("user.json", `{"auths": {"registry.internal": {"username": "u"}}}`)),
			[]string{`auths "registry.internal": needs both username and password`}},
		{"pull secret bad host", pull(docker("host.json", `{"auths": {"not a host": {"auth": "dXNlcjpwYXNz"}}}`)),
			[]string{`auths: "not a host" is not a registry`}},
		{"pull secret auths a list", pull(docker("list.json", `{"auths": []}`)),
			[]string{`is not Docker config JSON: "auths": json: cannot unmarshal array`}},
		{"pull secret too large", pull(big),
			[]string{"platform.registry.pullSecret: " + big + " is larger than the limit of 1 MiB"}},
		{"CA with no certificate", ca(notPEM),
			[]string{"platform.registry.caFile: " + notPEM + ": holds no PEM CERTIFICATE block"}},
		{"CA with a private key", ca(keyAsCA),
			[]string{"platform.registry.caFile: " + keyAsCA + `: holds a PEM block of type "PRIVATE KEY"`}},
		{"CA a directory", ca(subdir),
			[]string{"platform.registry.caFile: " + subdir + " is a directory"}},
		{"invalid settings are not read", Settings{TLS: &TLS{CertFile: f.cert}},
			[]string{"platform.tls: certFile is set but keyFile is not"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Load(tt.s)
			if err == nil {
				t.Fatalf("no error (%+v), want %q", r, tt.want)
			}
			errs := Errors(err)
			if len(errs) != len(tt.want) {
				t.Fatalf("%d errors, want %d:\n%v", len(errs), len(tt.want), err)
			}
			for i, e := range errs {
				if !strings.Contains(e.Error(), tt.want[i]) {
					t.Errorf("error %d:\n  %s\nwant it to contain\n  %s", i, e, tt.want[i])
				}
			}
		})
	}
}
