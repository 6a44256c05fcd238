package bundle

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestCheckImages: every kind of answer a registry gives is classified,
// in the order of the references, and a present image says its digest
// and platforms.
func TestCheckImages(t *testing.T) {
	f := newBundleFixture(t, 1<<10)
	// A registry that refuses everyone, one that answers a digest with
	// another image's manifest, and one that is gone.
	denied := startRegistry(t, func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
		})
	})
	var liarTarget string
	liar := startRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/manifests/sha256:") {
				r.URL.Path = liarTarget // serve another manifest for any digest
			}
			h.ServeHTTP(w, r)
		})
	})
	lie, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(liar + "/other:1")
	if err := remote.Write(ref, lie, f.ropts...); err != nil {
		t.Fatal(err)
	}
	liarTarget = "/v2/other/manifests/1"
	gone := httptest.NewServer(http.NotFoundHandler())
	goneHost := strings.TrimPrefix(gone.URL, "http://")
	gone.Close()

	// A single-platform image with a platform in its config.
	withPlatform, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "arm64", Variant: "v8"})
	if err != nil {
		t.Fatal(err)
	}
	wpRef := f.host + "/single:arm64"
	r, _ := name.ParseReference(wpRef)
	if err := remote.Write(r, withPlatform, f.ropts...); err != nil {
		t.Fatal(err)
	}
	wpDigest, _ := withPlatform.Digest()

	pinned := f.host + "/knative/serving/controller@" + f.stored[findPrefix(t, f.stored, f.host+"/knative/serving/controller@")]
	tests := []struct {
		name, ref string
		platforms []string
		problem   string
		digest    string
		plats     []string
	}{
		{name: "tagged image", ref: wpRef, digest: wpDigest.String(), plats: []string{"linux/arm64/v8"}},
		{name: "pinned by digest", ref: pinned, digest: pinned[strings.Index(pinned, "@")+1:]},
		{name: "index", ref: f.indexRef, plats: []string{"linux/amd64", "linux/arm64", "linux/s390x"}},
		{name: "index with the platforms asked for", ref: f.indexRef, platforms: []string{"linux/arm64"}, plats: []string{"linux/amd64", "linux/arm64", "linux/s390x"}},
		{name: "index without a platform asked for", ref: f.indexRef, platforms: []string{"linux/ppc64le"}, problem: ProblemPlatform},
		{name: "tag not found", ref: f.host + "/istio/pilot:9.9.9", problem: ProblemNotFound},
		{name: "repository not found", ref: f.host + "/nothing/here:1", problem: ProblemNotFound},
		{name: "digest not found", ref: f.host + "/istio/pilot@sha256:" + strings.Repeat("0", 64), problem: ProblemNotFound},
		{name: "unauthorized", ref: denied + "/private/image:1", problem: ProblemUnauthorized},
		{name: "digest mismatch", ref: liar + "/other@sha256:" + strings.Repeat("1", 64), problem: ProblemDigestMismatch},
		{name: "unreachable", ref: goneHost + "/image:1", problem: ProblemUnreachable},
		{name: "unreachable registry, second image", ref: goneHost + "/image:2", problem: ProblemUnreachable},
		{name: "invalid reference", ref: "UPPER/Case::x", problem: ProblemInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CheckImages(context.Background(), []string{tt.ref}, CheckOptions{RemoteOptions: f.ropts, Platforms: tt.platforms})
			if len(got) != 1 {
				t.Fatalf("%d statuses for one reference", len(got))
			}
			s := got[0]
			if s.Ref != tt.ref || s.Problem != tt.problem {
				t.Fatalf("status %+v, want problem %q", s, tt.problem)
			}
			if tt.problem != "" {
				if s.Error == "" || s.OK() {
					t.Errorf("a failed check without its error: %+v", s)
				}
				return
			}
			if tt.digest != "" && s.Digest != tt.digest {
				t.Errorf("digest %s, want %s", s.Digest, tt.digest)
			}
			if !strings.HasPrefix(s.Digest, "sha256:") || s.MediaType == "" {
				t.Errorf("status %+v lacks digest or media type", s)
			}
			if !slices.Equal(s.Platforms, tt.plats) {
				t.Errorf("platforms %v, want %v", s.Platforms, tt.plats)
			}
		})
	}

	// All at once: the statuses keep the references' order.
	var refs []string
	for _, tt := range tests {
		refs = append(refs, tt.ref)
	}
	all := CheckImages(context.Background(), refs, CheckOptions{RemoteOptions: f.ropts, Concurrency: 3})
	for i, s := range all {
		if s.Ref != refs[i] {
			t.Fatalf("status %d is of %s, want %s", i, s.Ref, refs[i])
		}
	}
	missing := Unavailable(all)
	if len(missing) != 8 { // every problem but missing-platform (no platforms asked)
		t.Errorf("%d unavailable, want 8: %+v", len(missing), missing)
	}
	msg := (&ImagesMissingError{Missing: missing, Total: len(all)}).Error()
	for _, s := range missing {
		if !strings.Contains(msg, s.Ref[:min(len(s.Ref), 40)]) {
			t.Errorf("the error does not name %s:\n%s", s.Ref, msg)
		}
	}
	if !strings.Contains(msg, "image overrides") || !strings.HasPrefix(msg, "8 of 13 images cannot be pulled") {
		t.Errorf("the error lacks the count or the remedy:\n%s", msg)
	}
}

func findPrefix(t *testing.T, m map[string]string, prefix string) string {
	t.Helper()
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			return k
		}
	}
	t.Fatalf("no key with prefix %s", prefix)
	return ""
}

// TestCreateChecksImagesFirst: a release with images missing from the
// registry is refused before anything is written, naming every missing
// image.
func TestCreateChecksImagesFirst(t *testing.T) {
	f := newBundleFixture(t, 1<<10)
	var gone []string
	for _, ref := range []string{f.host + "/istio/proxyv2:1.0.0", f.host + "/triggermesh/controller:1.0.0", f.indexRef} {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Delete(r, f.ropts...); err != nil { // the tag: pkg/registry keeps tags and digests apart
			t.Fatalf("delete %s: %v", ref, err)
		}
		gone = append(gone, ref)
	}
	work := t.TempDir()
	opts := f.options()
	opts.WorkDir = work
	progressed := 0
	opts.Progress = func(_, _ int, what string) {
		// Assets are fetched and verified (into scratch space) first.
		if !strings.HasPrefix(what, "asset ") {
			progressed++
		}
	}
	var buf bytes.Buffer
	_, err := Create(context.Background(), &buf, opts)
	var me *ImagesMissingError
	if !errors.As(err, &me) {
		t.Fatalf("Create: %v, want an *ImagesMissingError", err)
	}
	var named []string
	for _, s := range me.Missing {
		named = append(named, s.Ref)
		if s.Problem != ProblemNotFound {
			t.Errorf("%s: problem %s, want %s", s.Ref, s.Problem, ProblemNotFound)
		}
	}
	slices.Sort(named)
	slices.Sort(gone)
	if !slices.Equal(named, gone) {
		t.Errorf("missing %v, want exactly %v", named, gone)
	}
	for _, ref := range gone {
		if !strings.Contains(err.Error(), ref) {
			t.Errorf("the error does not name %s: %v", ref, err)
		}
	}
	if buf.Len() != 0 || progressed != 0 {
		t.Errorf("Create wrote %d bytes and reported %d steps besides assets before refusing", buf.Len(), progressed)
	}
	if entries, _ := os.ReadDir(work); len(entries) != 0 {
		t.Errorf("Create left %d entries in its work dir", len(entries))
	}
}
