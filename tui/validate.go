package tui

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// stepFields returns the fields step s shows the errors of. The rules are
// the Backend's (Backend.Validate); the wizard only places its answers.
func stepFields(s screen) []string {
	switch s {
	case screenTarget:
		return []string{FieldContext, FieldClusterName}
	case screenRelease:
		return []string{FieldRelease}
	case screenComponents:
		return []string{FieldComponents}
	case screenAirGap:
		return []string{FieldBundle, FieldBundleKey, FieldRegistry, FieldMirror}
	case screenOverlay:
		return []string{FieldIstioOverlay}
	case screenSettings:
		return []string{FieldDomain, FieldTLSCert, FieldTLSKey, FieldPullSecret, FieldHAReplicas, FieldGeneral}
	}
	return nil
}

// fieldLabel names a field in a sentence ("esc to go back and change
// the mirror directory").
func fieldLabel(field string) string {
	switch field {
	case FieldContext:
		return "the kubeconfig context"
	case FieldClusterName:
		return "the cluster name"
	case FieldRelease:
		return "the release"
	case FieldComponents:
		return "the components"
	case FieldBundle:
		return "the bundle"
	case FieldBundleKey:
		return "the bundle key"
	case FieldRegistry:
		return "the registry"
	case FieldMirror:
		return "the mirror directory"
	case FieldIstioOverlay:
		return "the Istio overlay"
	case FieldDomain:
		return "the domain"
	case FieldTLSCert:
		return "the TLS certificate"
	case FieldTLSKey:
		return "the TLS key"
	case FieldPullSecret:
		return "the pull secret"
	case FieldHAReplicas:
		return "the HA replicas"
	}
	return "the settings"
}

// lastFormStep shows the errors no other step owns.
const lastFormStep = screenSettings

// fieldStep returns the step that shows field's errors: the last form step
// for FieldGeneral and for fields it does not know.
func fieldStep(field string) screen {
	for s := screenWelcome; s <= lastFormStep; s++ {
		if slices.Contains(stepFields(s), field) {
			return s
		}
	}
	return lastFormStep
}

// invalid asks the Backend about the answers a and returns the messages for
// step s's fields, in the Backend's order.
func (m *Model) invalid(s screen, a Answers) []string {
	var out []string
	for _, fe := range m.opts.Backend.Validate(a) {
		if fieldStep(fe.Field) == s && fe.Message != "" {
			out = append(out, fe.Message)
		}
	}
	return out
}

// expandPath replaces a leading ~/ with the home directory.
func expandPath(p string) string {
	p = strings.TrimSpace(p)
	if strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[2:])
		}
	}
	return p
}
