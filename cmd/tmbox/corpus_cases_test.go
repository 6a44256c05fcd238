//go:build unix

package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tmbox/tmbox/bundle"
	"github.com/tmbox/tmbox/catalog"
)

// Paths cases use, under the sandbox.
const (
	corpusStateDir  = sbToken + "/state/tmbox"
	corpusMirror    = sbToken + "/in/mirror"
	corpusRender    = sbToken + "/out/render"
	corpusBundle    = sbToken + "/in/b.bundle"
	corpusBundleOut = sbToken + "/out/new.bundle"
)

// Release 1.23 with only the required components needs just these assets
// (its Istio is compiled in); the triggermesh cases add TriggerMesh's.
var (
	mirrorAssets = []string{"knative/serving/1.23.0", "knative/net-istio/1.23.0"}
	// netIstioAsset is the asset the mirror cases of render and install
	// break; serving's CRDs, the first asset bundle create reads, are
	// the one its cases break.
	netIstioAsset    = "knative/net-istio/1.23.0/net-istio.yaml"
	servingCRDsAsset = "knative/serving/1.23.0/1-serving-crds.yaml"
	// renderArgs and installMirrorArgs read that mirror; neither needs a
	// cluster or the network.
	renderArgs        = []string{"render", "--release", "1.23", "--components", "istio,knative-serving,net-istio", "--mirror", corpusMirror, "--output-dir", corpusRender}
	installMirrorArgs = []string{"install", "--release", "1.23", "--components", "istio,knative-serving,net-istio", "--mirror", corpusMirror, "--create-cluster", "--dry-run", "--yes"}
	installBundleArgs = []string{"install", "--bundle", corpusBundle, "--create-cluster", "--yes"}
	// upgradeBundleArgs: upgrade verifies a bundle before it reads the
	// cluster (1.30 is the fixture bundles' release).
	upgradeBundleArgs = []string{"upgrade", "--to", "1.30", "--bundle", corpusBundle, "--yes"}
)

// withArgs returns args followed by more, without sharing args' array.
func withArgs(args []string, more ...string) []string {
	return append(slices.Clone(args), more...)
}

// sbIn and sbOut are paths under the sandbox's in and out directories.
func sbIn(name string) string  { return sbToken + "/in/" + name }
func sbOut(name string) string { return sbToken + "/out/" + name }

// quotePrefix is how an error quotes the start of a value: `"` and its
// first n bytes.
func quotePrefix(s string, n int) string {
	q := strconv.Quote(s)
	if len(q) > n+1 {
		q = q[:n+1]
	}
	return q
}

// setups runs each setup in turn.
func setups(fs ...func(t *testing.T, sb *sandbox)) func(t *testing.T, sb *sandbox) {
	return func(t *testing.T, sb *sandbox) {
		for _, f := range fs {
			if f != nil {
				f(t, sb)
			}
		}
	}
}

// inFile writes data to in/name.
func inFile(name string, data []byte) func(t *testing.T, sb *sandbox) {
	return func(t *testing.T, sb *sandbox) { sb.write(t, "in/"+name, data) }
}

// inText writes text to in/name, sbToken in it expanded.
func inText(name, text string) func(t *testing.T, sb *sandbox) {
	return func(t *testing.T, sb *sandbox) { sb.write(t, "in/"+name, []byte(sb.expand(text))) }
}

// inFifo makes in/name a named pipe nobody writes to.
func inFifo(name string) func(t *testing.T, sb *sandbox) {
	return func(t *testing.T, sb *sandbox) { sb.mkfifo(t, "in/"+name) }
}

// inDir makes in/name a directory (with a file in it).
func inDir(name string) func(t *testing.T, sb *sandbox) {
	return func(t *testing.T, sb *sandbox) { sb.write(t, "in/"+name+"/inside.yaml", []byte("a: b\n")) }
}

// inSymlink makes in/name a symbolic link to target (sbToken expanded).
func inSymlink(name, target string) func(t *testing.T, sb *sandbox) {
	return func(t *testing.T, sb *sandbox) {
		if err := os.Symlink(sb.expand(target), sb.path("in/"+name)); err != nil {
			t.Fatal(err)
		}
	}
}

// garbage is deterministic binary junk: NULs, invalid UTF-8, control
// characters, YAML and tar lookalikes.
func garbage(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	copy(b, "\x00\xff\xfe{[: ---\n\t")
	return b
}

// oversized is a file of n bytes of YAML comments after head.
func oversized(head string, n int) []byte {
	b := bytes.NewBufferString(head)
	line := "# " + strings.Repeat("x", 1021) + "\n"
	for b.Len() < n {
		b.WriteString(line)
	}
	return b.Bytes()
}

// replaceOnce is s with old replaced once by new; old must be in s.
func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("fixture: %q is not in the text to edit", old)
	}
	return strings.Replace(s, old, new, 1)
}

// corpusCases is every case of the suite, by category.
func corpusCases(t *testing.T, fx *corpusFixtures) []corpusCase {
	var cases []corpusCase
	for _, gen := range []func(*testing.T, *corpusFixtures) []corpusCase{flagCases, configCases, catalogCases, overlayCases, mirrorCases, bundleCases} {
		cases = append(cases, gen(t, fx)...)
	}
	return cases
}

// mirror copies release 1.23's serving and net-istio assets (and
// extra ones) into in/mirror.
func (fx *corpusFixtures) mirror(extra ...string) func(t *testing.T, sb *sandbox) {
	return func(t *testing.T, sb *sandbox) {
		for _, rel := range append(slices.Clone(mirrorAssets), extra...) {
			sb.copyUpstream(t, fx.upstream, rel, "in/mirror/"+rel)
		}
	}
}

// flagCases: bad flag and environment values, conflicting flags, bad
// output paths.
func flagCases(t *testing.T, fx *corpusFixtures) []corpusCase {
	var cases []corpusCase
	add := func(c corpusCase) {
		c.category = "flags"
		cases = append(cases, c)
	}

	// The cluster name names files under the state dir: every verb that
	// takes it must refuse traversal and invalid names (issue 14 item 1).
	clusterVerbs := []struct {
		name string
		args []string
	}{
		{"install", []string{"install", "--create-cluster", "--dry-run", "--yes"}},
		{"install-existing", []string{"install", "--dry-run", "--yes"}},
		{"preflight", []string{"preflight", "--create-cluster"}},
		{"cluster-create", []string{"cluster", "create"}},
		{"cluster-delete", []string{"cluster", "delete", "--state-dir", corpusStateDir}},
		{"cluster-kubeconfig", []string{"cluster", "kubeconfig", "--state-dir", corpusStateDir}},
	}
	clusterNames := []struct{ name, value string }{
		{"dotdot-victim", "../victim"},
		{"two-up-victim", "../../victim"},
		{"absolute-victim", sbToken + "/victim"},
		{"space", "Bad Name"},
		{"slash", "a/b"},
		{"dotdot", ".."},
		{"too-long", strings.Repeat("x", 70)},
	}
	for _, v := range clusterVerbs {
		for _, n := range clusterNames {
			add(corpusCase{
				name: "cluster-name/" + v.name + "/" + n.name,
				args: withArgs(v.args, "--cluster-name", n.value),
				code: exitUsage, want: []string{"cluster name", quotePrefix(n.value, 24)},
			})
		}
		add(corpusCase{
			name: "cluster-name/" + v.name + "/env-dotdot-victim",
			args: v.args, env: []string{"TMBOX_CLUSTER_NAME=../victim"},
			code: exitUsage, want: []string{"cluster name", `"../victim"`},
		})
	}

	// Durations: negative and garbage (zero is the documented "default").
	durationFlags := []struct {
		name, flag string
		args       []string
	}{
		{"install-timeout", "--timeout", []string{"install", "--dry-run", "--yes"}},
		{"upgrade-timeout", "--timeout", []string{"upgrade", "--to", "1.23", "--yes"}},
		{"install-preflight-timeout", "--preflight-timeout", []string{"install", "--dry-run", "--yes"}},
		{"preflight-preflight-timeout", "--preflight-timeout", []string{"preflight"}},
		{"cluster-create-preflight-timeout", "--preflight-timeout", []string{"cluster", "create"}},
	}
	for _, d := range durationFlags {
		for _, v := range []string{"-5m", "-1ns", "abc", "5", "9999999999h"} {
			add(corpusCase{
				name: "duration/" + d.name + "/" + v,
				args: withArgs(d.args, d.flag+"="+v),
				code: exitUsage, want: []string{d.flag, v},
			})
		}
	}
	add(corpusCase{name: "duration/env-timeout-negative", args: []string{"install", "--dry-run", "--yes"}, env: []string{"TMBOX_TIMEOUT=-5m"}, code: exitUsage, want: []string{"timeout", "-5m"}})
	add(corpusCase{name: "duration/env-preflight-timeout-garbage", args: []string{"preflight"}, env: []string{"TMBOX_PREFLIGHT_TIMEOUT=soon"}, code: exitUsage, want: []string{"TMBOX_PREFLIGHT_TIMEOUT", "soon"}})

	// Components: an explicitly empty list is not "all" (item 13).
	componentVerbs := []struct {
		name  string
		args  []string
		setup func(t *testing.T, sb *sandbox)
		out   []string
	}{
		{"install", []string{"install", "--dry-run", "--yes"}, nil, nil},
		{"render", []string{"render", "--release", "1.23", "--mirror", corpusMirror, "--output-dir", corpusRender}, fx.mirror(), []string{corpusRender}},
		{"preflight", []string{"preflight"}, nil, nil},
	}
	for _, v := range componentVerbs {
		for _, c := range []struct{ name, value, want string }{
			{"empty", "", "--components is empty"},
			{"comma", ",", `unknown component ""`},
			{"unknown", "nope", `unknown component "nope"`},
			{"one-unknown", "istio,nope", `unknown component "nope"`},
			{"upper-case", "ISTIO", `unknown component "ISTIO"`},
			{"traversal", "../istio", `unknown component "../istio"`},
			{"core-without-triggermesh", "triggermesh-core", "triggermesh-core needs triggermesh"},
		} {
			add(corpusCase{
				name: "components/" + v.name + "/" + c.name, setup: v.setup,
				args: withArgs(v.args, "--components="+c.value),
				code: exitUsage, want: []string{c.want}, outputs: v.out,
			})
		}
	}
	add(corpusCase{name: "components/env-empty", args: []string{"install", "--dry-run", "--yes"}, env: []string{"TMBOX_COMPONENTS="}, code: exitUsage, want: []string{"--components is empty"}})

	// --registry is validated before the bundle is read (item 10): the
	// bundle is junk, so a late check shows as a bundle error.
	junkBundle := inText("b.bundle", "not a bundle\n")
	for _, r := range []string{"host:99999", "host:0", "reg.local/../x", "reg.local/x/../../y", "http://x", "https://reg.local/x", "//x", "a b", "reg.local//x", "reg.local/X", "[::1", "-x"} {
		add(corpusCase{
			name: "registry/" + r, setup: junkBundle,
			args: []string{"install", "--bundle", corpusBundle, "--registry", r, "--yes"},
			code: exitUsage, want: []string{"--registry", quotePrefix(r, 20)},
		})
	}
	add(corpusCase{name: "registry/env-scheme", setup: junkBundle, args: []string{"install", "--bundle", corpusBundle, "--yes"}, env: []string{"TMBOX_REGISTRY=http://x"}, code: exitUsage, want: []string{"registry", `"http://x"`}})

	// --triggermesh-registry: every image reference tmbox makes must
	// parse (item 7); render writes them, install would apply them.
	tmMirror := fx.mirror("triggermesh/1.27.0")
	for _, r := range []string{"http://not a registry", "gcr.io/../x", "gcr.io/Trigger", "gcr.io/triggermesh:latest", "x@sha256:abc", "gcr.io//x"} {
		add(corpusCase{
			name: "triggermesh-registry/render/" + r, setup: tmMirror,
			args: []string{"render", "--release", "1.23", "--components", "istio,knative-serving,net-istio,triggermesh", "--mirror", corpusMirror, "--output-dir", corpusRender, "--triggermesh-registry", r},
			code: exitUsage, want: []string{"--triggermesh-registry", quotePrefix(r, 20)}, outputs: []string{corpusRender},
		})
		add(corpusCase{
			name: "triggermesh-registry/install/" + r,
			args: []string{"install", "--dry-run", "--yes", "--triggermesh-registry", r},
			code: exitUsage, want: []string{"--triggermesh-registry", quotePrefix(r, 20)},
		})
	}

	// Unknown releases, on every verb that takes one.
	for _, rel := range []string{"9.99", "../1.23", strings.Repeat("9", 300)} {
		name := rel
		if len(name) > 20 {
			name = "very-long"
		}
		want := []string{"unknown release", quotePrefix(rel, 20)}
		for _, v := range []struct {
			name  string
			args  []string
			setup func(t *testing.T, sb *sandbox)
			out   []string
		}{
			{"install", []string{"install", "--dry-run", "--yes", "--release", rel}, nil, nil},
			{"render", []string{"render", "--mirror", corpusMirror, "--output-dir", corpusRender, "--release", rel}, fx.mirror(), []string{corpusRender}},
			{"preflight", []string{"preflight", "--release", rel}, nil, nil},
			{"cluster-create", []string{"cluster", "create", "--release", rel}, nil, nil},
			{"upgrade", []string{"upgrade", "--yes", "--to", rel}, nil, nil},
			{"plan-to", []string{"plan", "--from", "1.21", "--to", rel}, nil, nil},
			{"plan-from", []string{"plan", "--from", rel, "--to", "1.23"}, nil, nil},
			{"bundle-create", []string{"bundle", "create", "--mirror", corpusMirror, "--file", corpusBundleOut, "--release", rel}, fx.mirror(), []string{corpusBundleOut}},
		} {
			add(corpusCase{name: "release/" + v.name + "/" + name, args: v.args, setup: v.setup, code: exitUsage, want: want, outputs: v.out, maxStderr: shortStderr})
		}
	}

	// -o: formats each command refuses.
	for _, c := range []struct {
		name string
		args []string
	}{
		{"version", []string{"version"}},
		{"versions", []string{"versions"}},
		{"status", []string{"status"}},
		{"preflight", []string{"preflight"}},
		{"install", []string{"install", "--yes"}},
		{"upgrade", []string{"upgrade", "--to", "1.23", "--yes"}},
		{"plan", []string{"plan", "--from", "1.21", "--to", "1.23"}},
		{"bundle-inspect", []string{"bundle", "inspect", corpusBundle}},
	} {
		add(corpusCase{name: "output-format/" + c.name, args: withArgs(c.args, "-o", "yaml2"), setup: junkBundle, code: exitUsage, want: []string{`unknown output format "yaml2"`}})
	}
	// -o was a path on these: a path given to it is refused naming the
	// flag that takes it now, and nothing is written.
	for _, c := range []struct {
		name, path, flag string
		args             []string
	}{
		{"render", corpusRender, "--output-dir DIR", []string{"render", "--release", "1.23", "--mirror", corpusMirror}},
		{"render-dash", "-", "--output-dir DIR", []string{"render", "--release", "1.23", "--mirror", corpusMirror}}, // the process runs in $SB
		{"bundle-create", corpusBundleOut, "--file FILE", []string{"bundle", "create", "--release", "1.23", "--mirror", corpusMirror}},
		{"bundle-keygen", sbOut("signing"), "--prefix PREFIX", []string{"bundle", "keygen"}},
		{"config-init", sbOut("tmbox.yaml"), "--file FILE", []string{"config", "init"}},
		{"support-bundle", sbOut("case.tar.gz"), "--file FILE", []string{"support-bundle"}},
	} {
		out := c.path
		if out == "-" {
			out = sbToken + "/-"
		}
		add(corpusCase{name: "output-path/" + c.name, args: withArgs(c.args, "-o", c.path), setup: fx.mirror(), code: exitUsage,
			want: []string{"-o is the output format now", "use " + c.flag, "Run 'tmbox "}, outputs: []string{out, sbOut("signing.key"), sbOut("case.tar.gz")}})
	}
	add(corpusCase{name: "output-format/install-upper-case", args: []string{"install", "--yes", "-o", "JSON"}, code: exitUsage, want: []string{`unknown output format "JSON"`}})
	add(corpusCase{name: "output-format/env-empty", args: []string{"status"}, env: []string{"TMBOX_OUTPUT="}, code: exitUsage, want: []string{`unknown output format ""`}})

	// --platform of bundle create must be os/arch[/variant] (item 11).
	for _, p := range []string{"../../x", "linux", "linux/amd64/v8/extra", "Linux/amd64", "linux/amd64:10.0", "linux/", "/amd64", "linux/amd64,"} {
		add(corpusCase{
			name: "platform/" + strconv.Quote(p), setup: fx.mirror(),
			args: []string{"bundle", "create", "--release", "1.23", "--mirror", corpusMirror, "--file", corpusBundleOut, "--platform", "linux/amd64", "--platform", p},
			code: exitUsage, want: []string{"--platform"}, outputs: []string{corpusBundleOut},
		})
	}

	// Key files.
	validBundle := inFile("b.bundle", fx.unsigned)
	for _, k := range []struct {
		name  string
		setup func(t *testing.T, sb *sandbox)
		want  string
	}{
		{"missing", nil, "k.pem"},
		{"directory", inDir("k.pem"), "k.pem"},
		{"fifo", inFifo("k.pem"), "k.pem"},
		{"garbage", inFile("k.pem", garbage(300)), "k.pem"},
		{"empty", inText("k.pem", ""), "k.pem"},
		{"oversized", inFile("k.pem", oversized("", bundle.MaxKeyFileSize+1)), "limit of 64 KiB"},
		{"wrong-type-for-public", inFile("k.pem", fx.priv), "k.pem"},
		{"wrong-type-for-private", inFile("k.pem", fx.pub), "k.pem"},
	} {
		switch k.name {
		case "wrong-type-for-public":
			add(corpusCase{name: "keys/bundle-key/private-key", setup: setups(validBundle, k.setup), args: withArgs(installBundleArgs, "--bundle-key", sbIn("k.pem")), code: exitUsage, want: []string{"--bundle-key", k.want}, stateEmpty: true})
			add(corpusCase{name: "keys/verify-key/private-key", setup: setups(validBundle, k.setup), args: []string{"bundle", "verify", corpusBundle, "--key", sbIn("k.pem")}, code: exitUsage, want: []string{"--key", k.want}})
			continue
		case "wrong-type-for-private":
			add(corpusCase{name: "keys/sign-key/public-key", setup: setups(fx.mirror(), k.setup), args: []string{"bundle", "create", "--release", "1.23", "--mirror", corpusMirror, "--file", corpusBundleOut, "--sign-key", sbIn("k.pem")}, code: exitUsage, want: []string{"--sign-key", k.want}, outputs: []string{corpusBundleOut}})
			continue
		}
		s := k.setup
		if s == nil {
			s = func(*testing.T, *sandbox) {}
		}
		add(corpusCase{name: "keys/bundle-key/" + k.name, setup: setups(validBundle, s), args: withArgs(installBundleArgs, "--bundle-key", sbIn("k.pem")), code: exitUsage, want: []string{"--bundle-key", k.want}, stateEmpty: true})
		add(corpusCase{name: "keys/verify-key/" + k.name, setup: setups(validBundle, s), args: []string{"bundle", "verify", corpusBundle, "--key", sbIn("k.pem")}, code: exitUsage, want: []string{"--key", k.want}})
		add(corpusCase{name: "keys/sign-key/" + k.name, setup: setups(fx.mirror(), s), args: []string{"bundle", "create", "--release", "1.23", "--mirror", corpusMirror, "--file", corpusBundleOut, "--sign-key", sbIn("k.pem")}, code: exitUsage, want: []string{"--sign-key", k.want}, outputs: []string{corpusBundleOut}})
	}

	// Flags that conflict or need each other, and other usage errors.
	for _, c := range []struct {
		name  string
		args  []string
		setup func(t *testing.T, sb *sandbox)
		want  string
	}{
		{"bundle-and-mirror", withArgs(installBundleArgs, "--mirror", corpusMirror), setups(validBundle, fx.mirror()), "--bundle and --mirror are exclusive"},
		{"bundle-and-catalog", withArgs(installBundleArgs, "--catalog", sbIn("cat.yaml")), setups(validBundle, inText("cat.yaml", string(catalog.EmbeddedCatalog()))), "--bundle and --catalog are exclusive"},
		{"registry-without-bundle", []string{"install", "--registry", "reg.local", "--dry-run", "--yes"}, nil, "--registry needs --bundle"},
		{"bundle-key-without-bundle", []string{"install", "--bundle-key", sbIn("k.pub"), "--dry-run", "--yes"}, inText("k.pub", string(fx.pub)), "need --bundle"},
		{"require-signature-without-bundle", []string{"install", "--require-signature", "--dry-run", "--yes"}, nil, "need --bundle"},
		{"plan-kubernetes-version-without-from", []string{"plan", "--to", "1.23", "--kubernetes-version", "1.30.0"}, nil, "--kubernetes-version"},
		{"plan-bad-kubernetes-version", []string{"plan", "--from", "1.21", "--to", "1.23", "--kubernetes-version", "one.thirty"}, nil, "one.thirty"},
		{"plan-without-to", []string{"plan", "--from", "1.21"}, nil, "--to"},
		{"upgrade-without-to", []string{"upgrade", "--yes"}, nil, "--to"},
		{"install-without-yes", []string{"install", "--create-cluster"}, nil, "--yes"},
		{"uninstall-without-yes", []string{"uninstall"}, nil, "--yes"},
		{"unknown-flag", []string{"install", "--replicas", "3"}, nil, "--replicas"},
		{"unknown-command", []string{"instal"}, nil, "instal"},
		{"extra-argument", []string{"status", "everything"}, nil, "everything"},
		{"skip-unknown-phase", []string{"install", "--skip-phases", "preflight,nope", "--dry-run", "--yes"}, nil, `"nope"`},
		{"ignore-unknown-check", []string{"install", "--ignore-preflight-errors", "nope", "--dry-run", "--yes"}, nil, `"nope"`},
		{"workers-negative", []string{"install", "--create-cluster", "--workers", "-1", "--dry-run", "--yes"}, nil, "workers -1"},
		{"http-port-out-of-range", []string{"install", "--create-cluster", "--http-port", "99999", "--dry-run", "--yes"}, nil, "99999"},
		{"api-port-negative", []string{"install", "--create-cluster", "--api-port", "-5", "--dry-run", "--yes"}, nil, "-5"},
		{"listen-address-not-ip", []string{"install", "--create-cluster", "--listen-address", "not an ip", "--dry-run", "--yes"}, nil, `"not an ip"`},
		{"workers-garbage", []string{"cluster", "create", "--workers", "many"}, nil, `"many"`},
		{"bundle-verify-no-file", []string{"bundle", "verify"}, nil, "accepts 1 arg"},
		{"bundle-inspect-two-files", []string{"bundle", "inspect", corpusBundle, corpusBundle}, validBundle, "accepts 1 arg"},
	} {
		add(corpusCase{name: "usage/" + c.name, args: c.args, setup: c.setup, code: exitUsage, want: []string{c.want}, stateEmpty: true})
	}

	// Output paths: nothing is overwritten, half-written or left behind.
	keyPair := sbOut("signing")
	for _, c := range []struct {
		name    string
		args    []string
		setup   func(t *testing.T, sb *sandbox)
		code    int
		want    string
		outputs []string
	}{
		{"keygen/pub-exists", []string{"bundle", "keygen", "--prefix", keyPair}, func(t *testing.T, sb *sandbox) { sb.write(t, "out/signing.pub", fx.otherPub) }, exitUsage, "signing.pub exists", []string{keyPair + ".key"}},
		{"keygen/key-exists", []string{"bundle", "keygen", "--prefix", keyPair}, func(t *testing.T, sb *sandbox) { sb.write(t, "out/signing.key", fx.priv) }, exitUsage, "signing.key exists", []string{keyPair + ".pub"}},
		{"keygen/pub-is-directory-force", []string{"bundle", "keygen", "--prefix", keyPair, "--force"}, func(t *testing.T, sb *sandbox) { sb.write(t, "out/signing.pub/x", nil) }, exitUsage, "not a regular file", []string{keyPair + ".key"}},
		{"keygen/key-is-symlink-to-victim-force", []string{"bundle", "keygen", "--prefix", keyPair, "--force"}, func(t *testing.T, sb *sandbox) {
			if err := os.Symlink(sb.path("victim/notes.txt"), sb.path("out/signing.key")); err != nil {
				t.Fatal(err)
			}
		}, exitUsage, "not a regular file", []string{keyPair + ".pub"}},
		{"keygen/pub-is-fifo", []string{"bundle", "keygen", "--prefix", keyPair}, func(t *testing.T, sb *sandbox) { sb.mkfifo(t, "out/signing.pub") }, exitUsage, "signing.pub", []string{keyPair + ".key"}},
		{"keygen/no-such-directory", []string{"bundle", "keygen", "--prefix", sbOut("nodir/signing")}, nil, exitError, "nodir", []string{sbOut("nodir/signing.key"), sbOut("nodir/signing.pub")}},
		{"keygen/empty-prefix", []string{"bundle", "keygen", "--prefix", ""}, nil, exitUsage, "--prefix PREFIX", nil},
		{"config-init/exists", []string{"config", "init", "--file", sbOut("tmbox.yaml")}, func(t *testing.T, sb *sandbox) { sb.write(t, "out/tmbox.yaml", []byte("release: \"1.22\"\n")) }, exitUsage, "tmbox.yaml", nil},
		{"config-init/is-directory", []string{"config", "init", "--file", sbOut("cfgdir")}, func(t *testing.T, sb *sandbox) { sb.write(t, "out/cfgdir/x", nil) }, exitUsage, "cfgdir", nil},
		{"config-init/symlink-to-victim", []string{"config", "init", "--file", sbOut("tmbox.yaml")}, func(t *testing.T, sb *sandbox) {
			if err := os.Symlink(sb.path("victim/notes.txt"), sb.path("out/tmbox.yaml")); err != nil {
				t.Fatal(err)
			}
		}, exitUsage, "tmbox.yaml", nil},
		{"config-init/dangling-symlink", []string{"config", "init", "--file", sbOut("tmbox.yaml")}, func(t *testing.T, sb *sandbox) {
			if err := os.Symlink(sb.path("victim/new.txt"), sb.path("out/tmbox.yaml")); err != nil {
				t.Fatal(err)
			}
		}, exitUsage, "tmbox.yaml", []string{sbToken + "/victim/new.txt"}},
		{"config-init/no-such-directory", []string{"config", "init", "--file", sbOut("nodir/tmbox.yaml")}, nil, exitError, "nodir", []string{sbOut("nodir/tmbox.yaml")}},
		{"render/output-is-a-file", withArgs(renderArgs[:len(renderArgs)-2], "--output-dir", sbOut("render.yaml")), setups(fx.mirror(), func(t *testing.T, sb *sandbox) { sb.write(t, "out/render.yaml", []byte("keep: me\n")) }), exitUsage, "render.yaml", nil},
		{"render/no-output", renderArgs[:len(renderArgs)-2], fx.mirror(), exitUsage, "--output-dir DIR", nil},
		{"bundle-create/no-output", []string{"bundle", "create", "--release", "1.23", "--mirror", corpusMirror}, fx.mirror(), exitUsage, "--file FILE", nil},
		{"bundle-create/no-such-directory", []string{"bundle", "create", "--release", "1.23", "--mirror", corpusMirror, "--file", sbOut("nodir/b.bundle")}, fx.mirror(), exitError, "nodir", []string{sbOut("nodir/b.bundle")}},
	} {
		add(corpusCase{name: "output-file/" + c.name, args: c.args, setup: c.setup, code: c.code, want: []string{c.want}, outputs: c.outputs})
	}

	// A kubeconfig tmbox cannot read is refused before any connection,
	// and a named pipe in its place does not hang it.
	for _, k := range []struct {
		name  string
		setup func(t *testing.T, sb *sandbox)
	}{
		{"garbage", inFile("kubeconfig", garbage(500))},
		{"fifo", inFifo("kubeconfig")},
		{"directory", inDir("kubeconfig")},
	} {
		add(corpusCase{name: "kubeconfig/" + k.name, setup: k.setup, args: []string{"status"}, env: []string{"KUBECONFIG=" + sbIn("kubeconfig")}, code: exitError, want: []string{"kubeconfig"}})
	}
	return cases
}

// configCases: --config files (and TMBOX_CONFIG).
func configCases(t *testing.T, fx *corpusFixtures) []corpusCase {
	const head = "apiVersion: tmbox.dev/v1alpha1\nkind: InstallConfig\n"
	cfg := sbIn("c.yaml")
	installArgs := []string{"install", "--dry-run", "--config", cfg}
	var cases []corpusCase
	add := func(name string, text []byte, args []string, want ...string) {
		cases = append(cases, corpusCase{category: "configs", name: name, setup: inFile("c.yaml", text), args: args, code: exitUsage, want: want, maxStderr: shortStderr})
	}
	text := func(name, body string, want ...string) { add(name, []byte(body), installArgs, want...) }

	text("apiversion-twice", head+"apiVersion: tmbox.dev/v1alpha1\n", "c.yaml:3", "apiVersion is set twice")
	text("release-twice", head+"release: \"1.23\"\nrelease: \"1.22\"\n", "c.yaml:4", "release is set twice")
	text("second-document", head+"---\n"+head+"release: \"1.21\"\n", "c.yaml:3", "one YAML document")
	text("second-empty-document", head+"---\n", "c.yaml", "one YAML document")
	text("unknown-key", head+"replicas: 3\n", "c.yaml:3", `unknown key "replicas"`)
	text("key-wrong-case", head+"Release: \"1.23\"\n", "c.yaml:3", `unknown key "Release"`)
	text("flag-spelling-as-key", head+"cluster-name: x\n", "c.yaml:3", `unknown key "cluster-name"`)
	text("not-a-setting-config", head+"config: other.yaml\n", "c.yaml:3", `unknown key "config"`)
	text("release-mapping", head+"release: {name: \"1.23\"}\n", "c.yaml:3", "release")
	text("release-list", head+"release: [\"1.22\", \"1.23\"]\n", "c.yaml:3", "release")
	text("components-nested-list", head+"components: [[istio]]\n", "c.yaml:3", "components")
	text("components-empty-list", head+"components: []\n", "components")
	text("timeout-garbage", head+"timeout: forever\n", "c.yaml:3", "timeout", `"forever"`)
	text("timeout-negative", head+"timeout: -5m\n", "timeout", "-5m")
	text("workers-garbage", head+"workers: many\n", "c.yaml:3", "workers", `"many"`)
	text("yes-garbage", head+"yes: maybe\n", "c.yaml:3", "yes", `"maybe"`)
	text("alias", head+"release: &r \"1.23\"\nmirror: *r\n", "c.yaml:4", "mirror")
	text("cluster-name-traversal", head+"clusterName: ../victim\n", "cluster name", `"../victim"`)
	text("release-unknown", head+"release: \"9.99\"\n", `unknown release "9.99"`)
	text("api-version-wrong", "apiVersion: v1\nkind: InstallConfig\n", "c.yaml:1", `apiVersion "v1"`)
	text("kind-wrong", "apiVersion: tmbox.dev/v1alpha1\nkind: Pod\n", "c.yaml:2", `kind "Pod"`)
	text("identity-missing", "release: \"1.23\"\n", "c.yaml", "apiVersion")
	text("empty", "", "c.yaml", "empty config")
	text("list-document", "- release: \"1.23\"\n", "c.yaml:1", "mapping")
	text("malformed", head+"release: \"1.23\n\t- [\n", "c.yaml")
	add("binary-garbage", garbage(4096), installArgs, "c.yaml")
	add("too-large", oversized(head, maxConfigSize+1), installArgs, "c.yaml", "limit of 1 MiB")
	huge := head + "release: \"" + strings.Repeat("9", 10<<20) + "\"\n"
	add("huge-release-value-10MB", []byte(huge), installArgs, "c.yaml", "limit of 1 MiB")
	// Under the size limit, a long value is quoted as a short prefix
	// (item 14), whichever setting it is.
	for _, key := range []string{"release", "mirror", "clusterName", "triggermeshRegistry", "istioOverlay", "bundle", "timeout"} {
		add("long-value-"+key, []byte(head+key+": \""+strings.Repeat("9", 900<<10)+"\"\n"), installArgs, "9999999999")
	}
	// The cluster verbs read the config too.
	add("cluster-delete-cluster-name-traversal", []byte(head+"clusterName: ../victim\n"), []string{"cluster", "delete", "--config", cfg}, "cluster name", `"../victim"`)

	// The file itself.
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, sb *sandbox)
		env   []string
		args  []string
	}{
		{"directory", inDir("c.yaml"), nil, installArgs},
		{"fifo", inFifo("c.yaml"), nil, installArgs},
		{"missing", nil, nil, installArgs},
		{"env-missing", nil, []string{"TMBOX_CONFIG=" + cfg}, []string{"install", "--dry-run"}},
		{"env-fifo", inFifo("c.yaml"), []string{"TMBOX_CONFIG=" + cfg}, []string{"preflight"}},
		{"symlink-to-fifo", setups(inFifo("real.yaml"), inSymlink("c.yaml", sbIn("real.yaml"))), nil, installArgs},
	} {
		cases = append(cases, corpusCase{category: "configs", name: "file-" + c.name, setup: c.setup, env: c.env, args: c.args, code: exitUsage, want: []string{"c.yaml"}})
	}
	return cases
}

// catalogCases: --catalog files.
func catalogCases(t *testing.T, fx *corpusFixtures) []corpusCase {
	cat := sbIn("cat.yaml")
	embedded := string(catalog.EmbeddedCatalog())
	var cases []corpusCase
	edited := func(name string, edit func(t *testing.T, s string) string, want ...string) {
		cases = append(cases, corpusCase{
			category: "catalogs", name: name,
			setup: func(t *testing.T, sb *sandbox) { sb.write(t, "in/cat.yaml", []byte(edit(t, embedded))) },
			args:  []string{"--catalog", cat, "versions"},
			code:  exitBadCatalog, want: append([]string{"cat.yaml"}, want...),
		})
	}
	replace := func(old, new string) func(t *testing.T, s string) string {
		return func(t *testing.T, s string) string { return replaceOnce(t, s, old, new) }
	}
	const istioSHA = "405d2fdd969325e4cee60d65c47b19f5eb36ad332b2440c4d00f763611fd9af2"
	edited("malformed", func(*testing.T, string) string { return "apiVersion: tmbox.dev/v1alpha1\nkind: Catalog\nreleases: [\n" }, "yaml")
	edited("sha256-short", replace("sha256: "+istioSHA, "sha256: 405d2fdd96"), `"405d2fdd96"`)
	edited("sha256-upper-case", replace("sha256: "+istioSHA, "sha256: "+strings.ToUpper(istioSHA)), "sha256")
	edited("sha256-missing", replace("    sha256: "+istioSHA+"\n", ""), "sha256")
	edited("ko-registry-not-a-registry", replace("registry: gcr.io/triggermesh", `registry: "http://not a registry"`), "ko.registry", "http://not a registry")
	edited("ko-registry-traversal", replace("registry: gcr.io/triggermesh", `registry: "gcr.io/../x"`), "ko.registry", "gcr.io/../x")
	edited("image-rewrite-target-not-a-ref", replace("gcr.io/triggermesh/ibmmqsource-adapter:latest: gcr.io/triggermesh/ibmmqsource-adapter:v1.27.0", `gcr.io/triggermesh/ibmmqsource-adapter:latest: "not an image ref!"`), "imageRewrites", "not an image ref!")
	edited("image-with-scheme", replace("  - docker.io/istio/pilot:1.28.6", `  - "http://evil/pilot:1.28.6"`), "http://evil/pilot")
	edited("image-not-a-ref", replace("  - docker.io/istio/pilot:1.28.6", `  - "not an image ref!"`), "not an image ref!")
	edited("kind-node-image-unpinned", func(t *testing.T, s string) string {
		return replaceOnce(t, s, "kindNodeImage: kindest/node:v1.34.11@sha256:44e222ee2132dab25ff87301682f89eb82c7880ea3a1bf543bfe9708fd08d67d", "kindNodeImage: kindest/node:latest")
	}, "kindest/node:latest")
	edited("duplicate-release", func(t *testing.T, s string) string {
		i, j := strings.Index(s, "- name: \"1.22\""), strings.Index(s, "- name: \"1.23\"")
		if i < 0 || j < i {
			t.Fatal("fixture: the embedded catalog's releases moved")
		}
		return s[:j] + strings.Replace(s[i:j], `"1.22"`, `"1.21"`, 1) + s[j:]
	}, "duplicate release 1.21")
	edited("kind-wrong", replace("kind: Catalog", "kind: Catalogue"), "Catalogue")
	edited("api-version-wrong", replace("apiVersion: tmbox.dev/v1alpha1", "apiVersion: tmbox.dev/v2"), "tmbox.dev/v2")
	edited("asset-path-traversal", replace("path: istio/1.28.6/istio-kind-no-mesh/istio.yaml", "path: ../../victim/notes.txt"), "../../victim/notes.txt")
	edited("asset-path-absolute", replace("path: istio/1.28.6/istio-kind-no-mesh/istio.yaml", "path: /etc/passwd"), "/etc/passwd")
	edited("asset-url-http", replace("url: https://raw.githubusercontent.com/knative-extensions/net-istio/", "url: http://raw.githubusercontent.com/knative-extensions/net-istio/"), "https")
	edited("asset-size-negative", replace("    size: 938675", "    size: -1"), "size")
	edited("unknown-field", replace("kind: Catalog\n", "kind: Catalog\nmirrors: [evil]\n"), "mirrors")
	edited("component-version-missing", replace("  - name: istio\n    version: \"1.28.6\"", "  - name: istio\n    version: \"9.9.9\""), "istio 9.9.9")
	edited("release-name-traversal", replace(`- name: "1.21"`, `- name: "../1.21"`), `"../1.21"`)
	edited("kubernetes-constraint-garbage", replace(`kubernetes: ">= 1.30, < 1.35"`, `kubernetes: ">= banana"`), "banana")
	edited("second-document", func(_ *testing.T, s string) string { return s + "---\napiVersion: tmbox.dev/v1alpha1\nkind: Catalog\n" }, "one YAML document")
	edited("no-releases", func(*testing.T, string) string {
		return "apiVersion: tmbox.dev/v1alpha1\nkind: Catalog\nreleases: []\ncomponents: []\n"
	}, "no releases")
	edited("empty", func(*testing.T, string) string { return "" }, "")
	edited("too-large", func(_ *testing.T, s string) string { return string(oversized(s, int(catalog.MaxCatalogSize)+1)) }, "limit of 8 MiB")

	for _, c := range []struct {
		name  string
		setup func(t *testing.T, sb *sandbox)
	}{
		{"binary-garbage", inFile("cat.yaml", garbage(8192))},
		{"directory", inDir("cat.yaml")},
		{"fifo", inFifo("cat.yaml")},
		{"missing", nil},
		{"symlink-to-fifo", setups(inFifo("real.yaml"), inSymlink("cat.yaml", sbIn("real.yaml")))},
	} {
		cases = append(cases, corpusCase{category: "catalogs", name: "file-" + c.name, setup: c.setup, args: []string{"--catalog", cat, "versions"}, code: exitBadCatalog, want: []string{"cat.yaml"}})
	}
	// The catalog is read by every verb; a bad one is refused by each.
	bad := inText("cat.yaml", replaceOnce(t, embedded, "kind: Catalog", "kind: Catalogue"))
	for _, v := range []struct {
		name  string
		args  []string
		env   []string
		setup func(t *testing.T, sb *sandbox)
	}{
		{"render", withArgs(renderArgs, "--catalog", cat), nil, fx.mirror()},
		{"install", []string{"install", "--catalog", cat, "--dry-run", "--yes"}, nil, nil},
		{"preflight", []string{"preflight", "--catalog", cat}, nil, nil},
		{"plan", []string{"plan", "--catalog", cat, "--from", "1.21", "--to", "1.23"}, nil, nil},
		{"bundle-create", []string{"bundle", "create", "--catalog", cat, "--mirror", corpusMirror, "--file", corpusBundleOut}, nil, fx.mirror()},
		{"env", []string{"versions"}, []string{"TMBOX_CATALOG=" + cat}, nil},
		{"config", []string{"install", "--dry-run", "--yes", "--config", sbIn("c.yaml")}, nil, inText("c.yaml", "apiVersion: tmbox.dev/v1alpha1\nkind: InstallConfig\ncatalog: "+cat+"\n")},
	} {
		s := bad
		if v.setup != nil {
			s = setups(bad, v.setup)
		}
		cases = append(cases, corpusCase{category: "catalogs", name: "verb-" + v.name, setup: s, args: v.args, env: v.env, code: exitBadCatalog, want: []string{"cat.yaml", "Catalogue"}, outputs: []string{corpusRender, corpusBundleOut}})
	}
	return cases
}

// overlayCases: --istio-overlay files.
func overlayCases(t *testing.T, fx *corpusFixtures) []corpusCase {
	const head = "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\n"
	ov := sbIn("overlay.yaml")
	var cases []corpusCase
	add := func(name string, setup func(t *testing.T, sb *sandbox), both bool, want ...string) {
		s := setups(fx.mirror(), setup)
		want = append([]string{"overlay.yaml"}, want...)
		cases = append(cases, corpusCase{category: "overlays", name: "render/" + name, setup: s, args: withArgs(renderArgs, "--istio-overlay", ov), code: exitUsage, want: want, outputs: []string{corpusRender}})
		if both {
			cases = append(cases, corpusCase{category: "overlays", name: "install/" + name, setup: s, args: withArgs(installMirrorArgs, "--istio-overlay", ov), code: exitUsage, want: want})
		}
	}
	text := func(name, body string, both bool, want ...string) {
		add(name, inText("overlay.yaml", body), both, want...)
	}

	text("deployment", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: istiod}\n", true, "IstioOperator")
	text("namespace-kube-system", head+"spec:\n  namespace: kube-system\n", true, "spec.namespace")
	// An overlay cannot choose an image: what runs is what the catalog
	// pins (item 2).
	for _, c := range []struct{ name, spec, field string }{
		{"values-pilot-image", "  values: {pilot: {image: docker.io/evil/pilot:latest}}\n", "spec.values.pilot.image"},
		{"hub", "  hub: docker.io/evil\n", "spec.hub"},
		{"tag", "  tag: evil\n", "spec.tag"},
		{"values-global-hub", "  values: {global: {hub: docker.io/evil}}\n", "spec.values.global.hub"},
		{"values-global-tag", "  values: {global: {tag: evil}}\n", "spec.values.global.tag"},
		{"values-global-proxy-image", "  values: {global: {proxy: {image: docker.io/evil/proxyv2:1}}}\n", "spec.values.global.proxy.image"},
		{"values-global-proxy-init-image", "  values: {global: {proxy_init: {image: evil}}}\n", "spec.values.global.proxy_init.image"},
		{"components-pilot-tag", "  components: {pilot: {tag: evil}}\n", "spec.components.pilot.tag"},
		{"components-pilot-hub", "  components: {pilot: {hub: docker.io/evil}}\n", "spec.components.pilot.hub"},
		{"ingress-gateway-tag", "  components:\n    ingressGateways:\n    - {name: istio-ingressgateway, enabled: true, tag: evil}\n", "spec.components.ingressGateways[0].tag"},
		{"k8s-overlay-patches-image", "  components:\n    pilot:\n      k8s:\n        overlays:\n        - kind: Deployment\n          name: istiod\n          patches:\n          - {path: \"spec.template.spec.containers[0].image\", value: docker.io/evil/pilot:latest}\n", "image"},
		{"k8s-overlay-patches-containers", "  components:\n    pilot:\n      k8s:\n        overlays:\n        - kind: Deployment\n          name: istiod\n          patches:\n          - path: spec.template.spec.containers\n            value: [{name: discovery, image: docker.io/evil/pilot:latest}]\n", "image"},
		{"values-gateway-image", "  values: {gateways: {istio-ingressgateway: {image: docker.io/evil/proxyv2:1}}}\n", "image"},
	} {
		text("image/"+c.name, head+"spec:\n"+c.spec, true, c.field)
	}
	// Istio 1.28 and 1.29 are installed from their pinned manifests:
	// there is nothing to merge an overlay into.
	for _, rel := range []string{"1.21", "1.22"} {
		s := setups(fx.mirror(), inText("overlay.yaml", head+"spec:\n  meshConfig: {accessLogFile: /dev/stdout}\n"))
		cases = append(cases,
			corpusCase{category: "overlays", name: "render/release-" + rel, setup: s, args: []string{"render", "--release", rel, "--mirror", corpusMirror, "--output-dir", corpusRender, "--istio-overlay", ov}, code: exitUsage, want: []string{"--istio-overlay", "release " + rel}, outputs: []string{corpusRender}},
			corpusCase{category: "overlays", name: "install/release-" + rel, setup: s, args: []string{"install", "--release", rel, "--mirror", corpusMirror, "--create-cluster", "--dry-run", "--yes", "--istio-overlay", ov}, code: exitUsage, want: []string{"--istio-overlay", "release " + rel}},
		)
	}
	text("malformed", head+"spec:\n  values: {pilot: [\n", true)
	text("two-documents", head+"spec: {}\n---\n"+head+"spec: {}\n", true)
	text("unknown-top-level-field", head+"spec: {}\nextra: true\n", false, "extra")
	text("api-version-wrong", "apiVersion: v1\nkind: IstioOperator\n", false, "IstioOperator")
	text("empty", "", false, "IstioOperator")
	text("spec-wrong-type", head+"spec: [1, 2]\n", false, "spec")
	text("mesh-config-wrong-type", head+"spec:\n  meshConfig: 5\n", false, "meshConfig")
	add("binary-garbage", inFile("overlay.yaml", garbage(2048)), false)
	add("too-large", inFile("overlay.yaml", oversized(head+"spec: {}\n", 1<<20+1)), false, "limit of 1 MiB")
	add("directory", inDir("overlay.yaml"), true)
	add("fifo", inFifo("overlay.yaml"), true)
	add("missing", nil, true)
	add("symlink-to-fifo", setups(inFifo("real.yaml"), inSymlink("overlay.yaml", sbIn("real.yaml"))), false)
	// From the environment and a config file too.
	badImage := inText("overlay.yaml", head+"spec:\n  hub: docker.io/evil\n")
	cases = append(cases,
		corpusCase{category: "overlays", name: "env/hub", setup: setups(fx.mirror(), badImage), args: renderArgs, env: []string{"TMBOX_ISTIO_OVERLAY=" + ov}, code: exitUsage, want: []string{"overlay.yaml", "spec.hub"}, outputs: []string{corpusRender}},
		corpusCase{category: "overlays", name: "config/hub", setup: setups(fx.mirror(), badImage, inText("c.yaml", "apiVersion: tmbox.dev/v1alpha1\nkind: InstallConfig\nistioOverlay: "+ov+"\n")), args: withArgs(installMirrorArgs, "--config", sbIn("c.yaml")), code: exitUsage, want: []string{"overlay.yaml", "spec.hub"}},
	)
	return cases
}

// mirrorCases: --mirror directories.
func mirrorCases(t *testing.T, fx *corpusFixtures) []corpusCase {
	var cases []corpusCase
	// The mirror itself.
	for _, m := range []struct {
		name  string
		setup func(t *testing.T, sb *sandbox)
	}{
		{"missing", nil},
		{"a-file", inText("mirror", "not a directory\n")},
		{"fifo", inFifo("mirror")},
		{"symlink-to-file", setups(inText("real", "x\n"), inSymlink("mirror", sbIn("real")))},
	} {
		for _, v := range []struct {
			name string
			args []string
			out  []string
		}{
			{"render", renderArgs, []string{corpusRender}},
			{"install", installMirrorArgs, nil},
			{"preflight", []string{"preflight", "--mirror", corpusMirror}, nil},
			{"bundle-create", []string{"bundle", "create", "--mirror", corpusMirror, "--file", corpusBundleOut}, []string{corpusBundleOut}},
			{"upgrade", []string{"upgrade", "--to", "1.23", "--yes", "--mirror", corpusMirror}, nil},
		} {
			cases = append(cases, corpusCase{category: "mirrors", name: "dir-" + m.name + "/" + v.name, setup: m.setup, args: v.args, code: exitUsage, want: []string{"--mirror", "mirror"}, outputs: v.out})
		}
	}

	// mirror create refuses a bad target or release list before it
	// downloads anything.
	for _, c := range []struct {
		name  string
		args  []string
		setup func(t *testing.T, sb *sandbox)
		want  []string
	}{
		{"target-a-file", []string{"mirror", "create", sbIn("target")}, inText("target", "keep me\n"), []string{"target"}},
		{"target-fifo", []string{"mirror", "create", sbIn("target")}, inFifo("target"), []string{"target"}},
		{"target-symlink-to-victim-file", []string{"mirror", "create", sbIn("target")}, inSymlink("target", sbToken+"/victim/notes.txt"), []string{"target"}},
		{"release-empty", []string{"mirror", "create", sbOut("m"), "--release="}, nil, []string{"--release"}},
		{"release-unknown", []string{"mirror", "create", sbOut("m"), "--release", "1.23,9.99"}, nil, []string{"--release", `"9.99"`}},
		{"release-traversal", []string{"mirror", "create", sbOut("m"), "--release", "../1.23"}, nil, []string{"--release", `"../1.23"`}},
		{"ca-file-missing", []string{"mirror", "create", sbOut("m"), "--ca-file", sbIn("ca.pem")}, nil, []string{"--ca-file", "ca.pem"}},
		{"ca-file-fifo", []string{"mirror", "create", sbOut("m"), "--ca-file", sbIn("ca.pem")}, inFifo("ca.pem"), []string{"--ca-file", "ca.pem"}},
		{"ca-file-not-pem", []string{"mirror", "create", sbOut("m"), "--ca-file", sbIn("ca.pem")}, inFile("ca.pem", garbage(600)), []string{"--ca-file", "ca.pem"}},
		{"no-target", []string{"mirror", "create"}, nil, []string{"accepts 1 arg"}},
		{"output-format", []string{"mirror", "create", sbOut("m"), "-o", "xml"}, nil, []string{`unknown output format "xml"`}},
	} {
		cases = append(cases, corpusCase{category: "mirrors", name: "mirror-create/" + c.name, setup: c.setup, args: c.args, code: exitUsage, want: c.want, outputs: []string{sbOut("m")}})
	}

	// An asset that is not the pinned regular file: refused naming it,
	// without reading what is not a regular file (item 5).
	faults := []struct {
		name string
		// apply breaks the asset at rel (under in/mirror).
		apply func(t *testing.T, sb *sandbox, rel string)
		want  string
	}{
		{"fifo", func(t *testing.T, sb *sandbox, rel string) { sb.remove(t, rel); sb.mkfifo(t, rel) }, "named pipe"},
		{"directory", func(t *testing.T, sb *sandbox, rel string) {
			sb.remove(t, rel)
			sb.write(t, rel+"/x.yaml", []byte("a: b\n"))
		}, "directory"},
		{"symlink-to-directory", func(t *testing.T, sb *sandbox, rel string) { sb.remove(t, rel); sb.symlink(t, sb.path("victim"), rel) }, "directory"},
		{"symlink-to-fifo", func(t *testing.T, sb *sandbox, rel string) {
			sb.remove(t, rel)
			sb.mkfifo(t, "in/pipe")
			sb.symlink(t, sb.path("in/pipe"), rel)
		}, "named pipe"},
		{"symlink-to-device", func(t *testing.T, sb *sandbox, rel string) { sb.remove(t, rel); sb.symlink(t, "/dev/zero", rel) }, "device"},
		{"symlink-to-victim", func(t *testing.T, sb *sandbox, rel string) {
			sb.remove(t, rel)
			sb.symlink(t, sb.path("victim/notes.txt"), rel)
		}, "sha256"},
		{"dangling-symlink", func(t *testing.T, sb *sandbox, rel string) {
			sb.remove(t, rel)
			sb.symlink(t, sb.path("in/nothing"), rel)
		}, "no such file"},
		{"missing", func(t *testing.T, sb *sandbox, rel string) { sb.remove(t, rel) }, "no such file"},
		{"flipped-byte", func(t *testing.T, sb *sandbox, rel string) {
			sb.edit(t, rel, func(b []byte) []byte { b[len(b)/2] ^= 0x20; return b })
		}, "sha256"},
		{"truncated", func(t *testing.T, sb *sandbox, rel string) {
			sb.edit(t, rel, func(b []byte) []byte { return b[:len(b)/3] })
		}, "size"},
		{"appended", func(t *testing.T, sb *sandbox, rel string) {
			sb.edit(t, rel, func(b []byte) []byte {
				return append(b, "\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: evil}\n"...)
			})
		}, "size"},
		{"empty", func(t *testing.T, sb *sandbox, rel string) { sb.edit(t, rel, func([]byte) []byte { return nil }) }, "size"},
		{"swapped-for-another-asset", func(t *testing.T, sb *sandbox, rel string) {
			sb.copyUpstream(t, fx.upstream, "knative/serving/1.23.0/3-serving-hpa.yaml", rel)
		}, "sha256"},
	}
	for _, f := range faults {
		for _, v := range []struct {
			name, asset string
			args        []string
			out         []string
		}{
			{"render", netIstioAsset, renderArgs, []string{corpusRender}},
			{"install", netIstioAsset, installMirrorArgs, nil},
			{"bundle-create", servingCRDsAsset, []string{"bundle", "create", "--release", "1.23", "--mirror", corpusMirror, "--file", corpusBundleOut}, []string{corpusBundleOut}},
		} {
			if v.name == "bundle-create" && !slices.Contains([]string{"fifo", "symlink-to-device", "flipped-byte", "truncated", "directory"}, f.name) {
				continue
			}
			apply, asset := f.apply, v.asset
			cases = append(cases, corpusCase{
				category: "mirrors", name: "asset-" + f.name + "/" + v.name,
				setup: setups(fx.mirror(), func(t *testing.T, sb *sandbox) { apply(t, sb, "in/mirror/"+asset) }),
				args:  v.args, code: exitError, want: []string{asset, f.want}, outputs: v.out,
			})
		}
	}
	return cases
}

// bundleCases: bundle files from an untrusted channel, for install
// --bundle, upgrade --bundle, bundle verify and bundle inspect.
func bundleCases(t *testing.T, fx *corpusFixtures) []corpusCase {
	var cases []corpusCase
	const (
		verify  = 1 << iota // bundle verify FILE
		inspect             // bundle inspect FILE
		install             // install --bundle FILE --create-cluster --yes
		upgrade             // upgrade --to 1.30 --bundle FILE --yes
	)
	add := func(name string, verbs int, code int, make func(t *testing.T, sb *sandbox) []byte, want ...string) {
		setup := func(t *testing.T, sb *sandbox) { sb.write(t, "in/b.bundle", make(t, sb)) }
		if verbs&verify != 0 {
			cases = append(cases, corpusCase{category: "bundles", name: "verify/" + name, setup: setup, args: []string{"bundle", "verify", corpusBundle}, code: code, want: want})
		}
		if verbs&inspect != 0 {
			cases = append(cases, corpusCase{category: "bundles", name: "inspect/" + name, setup: setup, args: []string{"bundle", "inspect", corpusBundle}, code: code, want: want})
		}
		if verbs&install != 0 {
			cases = append(cases, corpusCase{category: "bundles", name: "install/" + name, setup: setup, args: installBundleArgs, code: code, want: want, stateEmpty: true})
		}
		if verbs&upgrade != 0 {
			cases = append(cases, corpusCase{category: "bundles", name: "upgrade/" + name, setup: setup, args: upgradeBundleArgs, code: code, want: want, stateEmpty: true})
		}
	}
	tamper := func(src []byte, edit func(t *testing.T, sb *sandbox, es []tarEntry) []tarEntry) func(t *testing.T, sb *sandbox) []byte {
		return func(t *testing.T, sb *sandbox) []byte {
			return writeTar(t, edit(t, sb, readTar(t, src)))
		}
	}
	raw := func(data []byte) func(*testing.T, *sandbox) []byte {
		return func(*testing.T, *sandbox) []byte { return data }
	}
	all := verify | inspect | install
	body := verify | install

	// Not a bundle at all.
	add("not-a-tar", all|upgrade, exitError, raw([]byte("#!/bin/sh\nrm -rf ~\n")), bundle.ManifestName)
	add("binary-garbage", all, exitError, raw(garbage(64<<10)), bundle.ManifestName)
	add("empty", all, exitError, raw(nil), bundle.ManifestName)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(fx.unsigned)
	zw.Close()
	add("gzipped", all, exitError, raw(gz.Bytes()), bundle.ManifestName)
	add("truncated-in-manifest", all, exitError, raw(fx.unsigned[:700]), bundle.ManifestName)
	add("truncated-header", all, exitError, raw(fx.unsigned[:100]), bundle.ManifestName)
	add("truncated-half", body, exitError, raw(fx.unsigned[:len(fx.unsigned)/2]), "bundle entry")
	add("truncated-end", body, exitError, raw(fx.unsigned[:len(fx.unsigned)-2048]), "bundle entry")

	// Entries that would write outside the extraction directory, or are
	// not regular files.
	evil := func(e func(sb *sandbox) tarEntry) func(t *testing.T, sb *sandbox) []byte {
		return tamper(fx.unsigned, func(_ *testing.T, sb *sandbox, es []tarEntry) []tarEntry { return insertAfterHead(es, e(sb)) })
	}
	add("entry-dotdot-to-victim", body|upgrade, exitError, evil(func(*sandbox) tarEntry { return regEntry("../../../victim/notes.txt", []byte("pwned\n")) }), "../../../victim/notes.txt", "..")
	add("entry-dotdot-inside", body, exitError, evil(func(*sandbox) tarEntry { return regEntry("assets/../../../../victim/notes.txt", []byte("pwned\n")) }), "assets/../../../../victim/notes.txt")
	add("entry-absolute-victim", body|upgrade, exitError, evil(func(sb *sandbox) tarEntry { return regEntry(sb.path("victim/notes.txt"), []byte("pwned\n")) }), "absolute path")
	add("entry-symlink-to-victim", body|upgrade, exitError, evil(func(sb *sandbox) tarEntry {
		return tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "assets/victim", Linkname: sb.path("victim"), Format: tar.FormatPAX}}
	}), "assets/victim", "symbolic link")
	add("entry-hardlink-to-victim", body|upgrade, exitError, evil(func(sb *sandbox) tarEntry {
		return tarEntry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "assets/kubeconfig", Linkname: sb.path("victim/kubeconfig"), Format: tar.FormatPAX}}
	}), "assets/kubeconfig", "hard link")
	add("entry-fifo", body, exitError, evil(func(*sandbox) tarEntry {
		return tarEntry{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "assets/pipe", Mode: 0o644, Format: tar.FormatPAX}}
	}), "assets/pipe", "named pipe")
	add("entry-char-device", body, exitError, evil(func(*sandbox) tarEntry {
		return tarEntry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "assets/zero", Devmajor: 1, Devminor: 5, Mode: 0o644, Format: tar.FormatPAX}}
	}), "assets/zero", "character device")
	add("entry-directory", body, exitError, evil(func(*sandbox) tarEntry {
		return tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "assets/evil/", Mode: 0o755, Format: tar.FormatPAX}}
	}), "assets/evil/", "directory")
	add("entry-unlisted", body, exitError, evil(func(*sandbox) tarEntry { return regEntry("assets/extra.yaml", []byte("kind: Namespace\n")) }), "assets/extra.yaml", "not listed")
	add("entry-manifest-again", body, exitError, evil(func(*sandbox) tarEntry { return regEntry(bundle.ManifestName, []byte("{}")) }), bundle.ManifestName, "again")
	add("first-entry-dotdot", all, exitError, raw(writeTar(t, []tarEntry{regEntry("../../../victim/notes.txt", []byte("pwned\n"))})), "../../../victim/notes.txt")
	add("first-entry-symlink", all, exitError, func(t *testing.T, sb *sandbox) []byte {
		return writeTar(t, []tarEntry{{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: bundle.ManifestName, Linkname: sb.path("victim/notes.txt"), Format: tar.FormatPAX}}})
	}, bundle.ManifestName, "symbolic link")
	add("manifest-not-first", all, exitError, tamper(fx.unsigned, func(_ *testing.T, _ *sandbox, es []tarEntry) []tarEntry {
		es[0], es[1] = es[1], es[0]
		return es
	}), "the first entry must be")

	// Contents that do not match the manifest.
	add("flipped-byte-in-asset", body|upgrade, exitError, tamper(fx.unsigned, func(t *testing.T, _ *sandbox, es []tarEntry) []tarEntry {
		i := entryIndex(t, es, firstEntry(t, es, bundle.AssetsDir+"/"))
		es[i].data[len(es[i].data)/2] ^= 1
		return es
	}), "assets/", "sha256")
	add("flipped-byte-in-blob", body, exitError, tamper(fx.unsigned, func(t *testing.T, _ *sandbox, es []tarEntry) []tarEntry {
		i := entryIndex(t, es, firstEntry(t, es, "images/blobs/sha256/"))
		es[i].data[len(es[i].data)-1] ^= 1
		return es
	}), "images/blobs/sha256/", "sha256")
	add("manifest-bad-digest", body|upgrade, exitError, tamper(fx.unsigned, func(t *testing.T, _ *sandbox, es []tarEntry) []tarEntry {
		editManifest(t, es, func(m *bundle.Manifest) {
			for i := range m.Files {
				if m.Files[i].Path == bundle.CatalogName {
					m.Files[i].SHA256 = strings.Repeat("0", 64)
				}
			}
		})
		return es
	}), bundle.CatalogName, "sha256")
	add("manifest-digest-not-hex", all, exitError, tamper(fx.unsigned, func(t *testing.T, _ *sandbox, es []tarEntry) []tarEntry {
		editManifest(t, es, func(m *bundle.Manifest) { m.Files[0].SHA256 = "../../victim" })
		return es
	}), bundle.ManifestName, "sha256")
	add("manifest-unsafe-path", all, exitError, tamper(fx.unsigned, func(t *testing.T, _ *sandbox, es []tarEntry) []tarEntry {
		editManifest(t, es, func(m *bundle.Manifest) { m.Files[0].Path = "../victim/notes.txt" })
		return es
	}), bundle.ManifestName, "../victim/notes.txt")
	add("manifest-wrong-schema", all, exitError, tamper(fx.unsigned, func(t *testing.T, _ *sandbox, es []tarEntry) []tarEntry {
		editManifest(t, es, func(m *bundle.Manifest) { m.Schema = "evil.example/bundle/v9" })
		return es
	}), bundle.ManifestName, "evil.example/bundle/v9")
	add("manifest-not-json", all, exitError, tamper(fx.unsigned, func(_ *testing.T, _ *sandbox, es []tarEntry) []tarEntry {
		es[0].data = []byte("release: 1.30\n")
		return es
	}), bundle.ManifestName)
	add("manifest-trailing-data", all, exitError, tamper(fx.unsigned, func(_ *testing.T, _ *sandbox, es []tarEntry) []tarEntry {
		es[0].data = append(es[0].data, "\n{}"...)
		return es
	}), bundle.ManifestName, "trailing")
	add("manifest-huge-file-size", all, exitError, tamper(fx.unsigned, func(t *testing.T, _ *sandbox, es []tarEntry) []tarEntry {
		editManifest(t, es, func(m *bundle.Manifest) { m.Files[len(m.Files)-1].Size = 1 << 50 })
		return es
	}), bundle.ManifestName, "limit")
	add("entry-missing", body, exitError, tamper(fx.unsigned, func(t *testing.T, _ *sandbox, es []tarEntry) []tarEntry {
		return slices.Delete(es, entryIndex(t, es, bundle.CatalogName), entryIndex(t, es, bundle.CatalogName)+1)
	}), bundle.CatalogName, "missing")
	add("entry-twice", body, exitError, tamper(fx.unsigned, func(t *testing.T, _ *sandbox, es []tarEntry) []tarEntry {
		return append(es, es[entryIndex(t, es, bundle.CatalogName)])
	}), bundle.CatalogName, "twice")
	// Consistent digests, but contents install would refuse: verify must
	// refuse them too (item 3).
	add("catalog-missing-an-image", body|upgrade, exitError, tamper(fx.unsigned, func(t *testing.T, _ *sandbox, es []tarEntry) []tarEntry {
		i := entryIndex(t, es, bundle.CatalogName)
		lines := strings.SplitAfter(string(es[i].data), "\n")
		j := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "/adapter") })
		if j < 0 {
			t.Fatal("fixture: the bundle's catalog lists no adapter image")
		}
		es[i].data = []byte(strings.Join(slices.Delete(lines, j, j+1), ""))
		restamp(t, es)
		return es
	}), bundle.CatalogName)
	add("index-missing-an-image", body|upgrade, exitError, tamper(fx.unsigned, func(t *testing.T, _ *sandbox, es []tarEntry) []tarEntry {
		i := entryIndex(t, es, "images/index.json")
		var idx struct {
			SchemaVersion int              `json:"schemaVersion"`
			MediaType     string           `json:"mediaType,omitempty"`
			Manifests     []map[string]any `json:"manifests"`
		}
		if err := json.Unmarshal(es[i].data, &idx); err != nil {
			t.Fatal(err)
		}
		idx.Manifests = idx.Manifests[1:]
		var err error
		if es[i].data, err = json.Marshal(idx); err != nil {
			t.Fatal(err)
		}
		restamp(t, es)
		return es
	}), "images/index.json")

	// Signatures: a key means a valid signature by it (item 4).
	keyFile := func(name string, data []byte) func(t *testing.T, sb *sandbox) {
		return func(t *testing.T, sb *sandbox) { sb.write(t, "in/"+name, data) }
	}
	stripped := writeTar(t, slices.DeleteFunc(readTar(t, fx.signed), func(e tarEntry) bool { return e.hdr.Name == bundle.SignatureName }))
	badSig := readTar(t, fx.signed)
	badSig[1].data = []byte("bm90IGEgc2lnbmF0dXJl\n")
	resigned := readTar(t, fx.signed)
	resigned[0].data = append(bytes.TrimSpace(resigned[0].data), ' ', '\n')
	for _, s := range []struct {
		name, key string
		bundle    []byte
		want      []string
	}{
		{"stripped-with-key", "k.pub", stripped, []string{bundle.SignatureName, "missing"}},
		{"unsigned-with-key", "k.pub", fx.unsigned, []string{bundle.SignatureName, "missing"}},
		{"wrong-key", "other.pub", fx.signed, []string{bundle.SignatureName, "does not verify"}},
		{"manifest-altered-after-signing", "k.pub", writeTar(t, resigned), []string{bundle.SignatureName, "does not verify"}},
		{"signature-garbage", "k.pub", writeTar(t, badSig), []string{bundle.SignatureName}},
	} {
		setup := setups(inFile("b.bundle", s.bundle), keyFile("k.pub", fx.pub), keyFile("other.pub", fx.otherPub))
		cases = append(cases,
			corpusCase{category: "bundles", name: "verify/signature-" + s.name, setup: setup, args: []string{"bundle", "verify", corpusBundle, "--key", sbIn(s.key)}, code: exitError, want: s.want},
			corpusCase{category: "bundles", name: "install/signature-" + s.name, setup: setup, args: withArgs(installBundleArgs, "--bundle-key", sbIn(s.key)), code: exitError, want: s.want, stateEmpty: true},
			corpusCase{category: "bundles", name: "upgrade/signature-" + s.name, setup: setup, args: withArgs(upgradeBundleArgs, "--bundle-key", sbIn(s.key)), code: exitError, want: s.want, stateEmpty: true},
		)
	}
	for _, s := range []struct {
		name   string
		bundle []byte
	}{{"unsigned", fx.unsigned}, {"stripped", stripped}} {
		setup := inFile("b.bundle", s.bundle)
		cases = append(cases,
			corpusCase{category: "bundles", name: "verify/require-signature-" + s.name, setup: setup, args: []string{"bundle", "verify", corpusBundle, "--require-signature"}, code: exitError, want: []string{bundle.SignatureName, "missing"}},
			corpusCase{category: "bundles", name: "install/require-signature-" + s.name, setup: setup, args: withArgs(installBundleArgs, "--require-signature"), code: exitError, want: []string{bundle.SignatureName, "missing"}, stateEmpty: true},
			corpusCase{category: "bundles", name: "upgrade/require-signature-" + s.name, setup: setup, args: withArgs(upgradeBundleArgs, "--require-signature"), code: exitError, want: []string{bundle.SignatureName, "missing"}, stateEmpty: true},
		)
	}

	// The bundle path is not a regular file.
	for _, p := range []struct {
		name  string
		setup func(t *testing.T, sb *sandbox)
	}{
		{"missing", nil},
		{"directory", inDir("b.bundle")},
		{"fifo", inFifo("b.bundle")},
		{"symlink-to-fifo", setups(inFifo("pipe"), inSymlink("b.bundle", sbIn("pipe")))},
		{"symlink-to-device", inSymlink("b.bundle", "/dev/zero")},
	} {
		for _, v := range []struct {
			name string
			args []string
		}{
			{"verify", []string{"bundle", "verify", corpusBundle}},
			{"inspect", []string{"bundle", "inspect", corpusBundle}},
			{"install", installBundleArgs},
			{"upgrade", upgradeBundleArgs},
		} {
			cases = append(cases, corpusCase{category: "bundles", name: v.name + "/file-" + p.name, setup: p.setup, args: v.args, code: exitUsage, want: []string{"b.bundle"}, stateEmpty: true})
		}
	}
	return cases
}
