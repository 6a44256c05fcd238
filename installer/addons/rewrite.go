package addons

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"helm.sh/helm/v3/pkg/kube"
	"helm.sh/helm/v3/pkg/postrender"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tmbox/tmbox/installer/apply"
)

// imageRewrite is the part of Manager.Images that applies to one
// add-on: the entries whose key occurs in its rendered manifests. It is
// the Helm post-renderer of the add-on's install and upgrade.
type imageRewrite map[string]string

var _ postrender.PostRenderer = imageRewrite(nil)

// Run rewrites every whole image reference of the mapping in Helm's
// rendered manifests, as the stack's objects are rewritten.
func (r imageRewrite) Run(rendered *bytes.Buffer) (*bytes.Buffer, error) {
	return bytes.NewBuffer(apply.RewriteImages(bytes.Clone(rendered.Bytes()), r)), nil
}

// label is the release label value of the mapping (LabelImageMap): the
// first 63 hex digits of the sha256 of its "key=value" lines, sorted;
// "" for no mapping.
func (r imageRewrite) label() string {
	if len(r) == 0 {
		return ""
	}
	lines := make([]string, 0, len(r))
	for k, v := range r {
		lines = append(lines, k+"="+v+"\n")
	}
	slices.Sort(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "")))
	return hex.EncodeToString(sum[:])[:63]
}

// rewriteFor picks the entries of m.Images that apply to the add-on:
// those whose key occurs as a whole reference in its manifests and
// hooks, rendered client-side (see Render).
func (m *Manager) rewriteFor(l *Loaded) (imageRewrite, error) {
	if len(m.Images) == 0 {
		return nil, nil
	}
	manifest, hooks, err := Render(l, "")
	if err != nil {
		return nil, err
	}
	data := []byte(strings.Join(append([]string{manifest}, hooks...), "\n---\n"))
	out := imageRewrite{}
	for k, v := range m.Images {
		if k == "" || !bytes.Contains(data, []byte(k)) {
			continue
		}
		if !bytes.Equal(apply.RewriteImages(bytes.Clone(data), map[string]string{k: v}), data) {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// Create rewrites the images of the objects Helm creates (its hooks'
// among them, which no post-renderer sees) with the add-on's mapping,
// then creates them. Objects of the release's manifest are already
// rewritten; rewriting them again changes nothing (a rewritten reference
// is on the registry's host and pinned by digest, so no key matches it).
func (c *waitingClient) Create(resources kube.ResourceList) (*kube.Result, error) {
	if len(c.rewrite) > 0 {
		for _, info := range resources {
			u, ok := info.Object.(*unstructured.Unstructured)
			if !ok {
				continue
			}
			if err := apply.RewriteObjectImages(u, c.rewrite); err != nil {
				return nil, fmt.Errorf("rewrite images: %w", err)
			}
		}
	}
	return c.Client.Create(resources)
}
