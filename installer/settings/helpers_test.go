package settings

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/apply"
)

// upstreamDir is ../shared/upstream beside the repository (the repository
// never holds copies); tests that need it report, not fail, when it is
// absent.
func upstreamDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "upstream"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("SKIPPED, not verified: %s is absent, so the settings were not applied to the real manifests", dir)
	}
	return dir
}

// releaseObjects decodes every non-optional asset of a catalog release
// from the upstream manifests the way installer.objectsFor does: per
// component a later copy of an object wins, across components the first
// component's copy does, generateName objects are kept as Create.
func releaseObjects(t testing.TB, release string) []*apply.Object {
	t.Helper()
	dir := upstreamDir(t)
	c, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Release(release)
	if err != nil {
		t.Fatal(err)
	}
	owner := map[apply.ObjectKey]string{}
	var out []*apply.Object
	for _, comp := range r.ComponentList() {
		if comp.Source == catalog.SourceCompiledIn {
			t.Fatalf("release %s: %s is compiled in: not read from %s", release, comp.Name, dir)
		}
		index := map[apply.ObjectKey]int{}
		var objs []*apply.Object
		for _, a := range comp.Assets {
			if a.Optional {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(a.Path)))
			if err != nil {
				t.Fatal(err)
			}
			if data, err = apply.ResolveImages(comp, data, ""); err != nil {
				t.Fatal(err)
			}
			docs, err := apply.DecodeManifest(data)
			if err != nil {
				t.Fatalf("%s: %v", a.Path, err)
			}
			for _, u := range docs {
				o := &apply.Object{Unstructured: u, Component: comp.Name, Create: u.GetName() == "" && u.GetGenerateName() != ""}
				if o.Create {
					objs = append(objs, o)
					continue
				}
				k := apply.KeyOf(u)
				if i, dup := index[k]; dup {
					objs[i] = o
					continue
				}
				index[k] = len(objs)
				objs = append(objs, o)
			}
		}
		for _, o := range objs {
			if !o.Create {
				k := apply.KeyOf(o.Unstructured)
				if first, taken := owner[k]; taken && first != comp.Name {
					continue
				}
				owner[k] = comp.Name
			}
			out = append(out, o)
		}
	}
	return out
}

// copyObjects deep-copies objects.
func copyObjects(objs []*apply.Object) []*apply.Object {
	out := make([]*apply.Object, len(objs))
	for i, o := range objs {
		out[i] = &apply.Object{Unstructured: o.DeepCopy(), Component: o.Component, Create: o.Create}
	}
	return out
}

// find returns the named object, failing the test when it is absent.
func find(t testing.TB, objs []*apply.Object, kind, ns, name string) *apply.Object {
	t.Helper()
	for _, o := range objs {
		if !o.Create && o.GetKind() == kind && o.GetNamespace() == ns && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s/%s", kind, ns, name)
	return nil
}

// without returns objs less the ones drop matches.
func without(objs []*apply.Object, drop func(*apply.Object) bool) []*apply.Object {
	var out []*apply.Object
	for _, o := range objs {
		if !drop(o) {
			out = append(out, o)
		}
	}
	return out
}

// keyPair makes a self-signed certificate for host and returns the PEM
// certificate and PKCS#8 key.
func keyPair(t testing.TB, host string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: host},
		DNSNames:              []string{host, "*." + host},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
}

// writeFile writes data to name in dir and returns its path.
func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testFiles are valid files for every setting that names one.
type testFiles struct {
	cert, key, pullSecret, ca            string
	certPEM, keyPEM, dockerConfig, caPEM []byte
}

// validFiles writes a matching certificate and key, a pull secret and a
// CA bundle into a temp dir.
func validFiles(t testing.TB) testFiles {
	t.Helper()
	dir := t.TempDir()
	cert, key := keyPair(t, "apps.example.com")
	ca, _ := keyPair(t, "registry.internal")
	docker := []byte(`{"auths": {"registry.internal:5000": {"auth": "dXNlcjpwYXNz"}, "https://index.docker.io/v1/": {"username": "u", "password": "p"}}}`)
	return testFiles{
		cert:         writeFile(t, dir, "tls.crt", cert),
		key:          writeFile(t, dir, "tls.key", key),
		pullSecret:   writeFile(t, dir, "config.json", docker),
		ca:           writeFile(t, dir, "ca.pem", ca),
		certPEM:      cert,
		keyPEM:       key,
		dockerConfig: docker,
		caPEM:        ca,
	}
}

// platformNode parses an InstallConfig and returns its platform: value.
func platformNode(t testing.TB, doc string) *yaml.Node {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatalf("test YAML: %v", err)
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "platform" {
			return m.Content[i+1]
		}
	}
	t.Fatalf("test YAML has no platform:\n%s", doc)
	return nil
}

// dedent removes the common leading tabs of a raw string literal, so
// test configs can be indented with the code; YAML is indented with two
// spaces after that.
func dedent(s string) string {
	lines := strings.Split(strings.TrimPrefix(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimLeft(l, "\t")
	}
	return strings.Join(lines, "\n")
}

// ptr returns a pointer to v.
func ptr[T any](v T) *T { return &v }
