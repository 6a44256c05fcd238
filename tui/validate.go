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
		return []string{FieldBundle, FieldBundleKey, FieldRegistry}
	case screenOverlay:
		return []string{FieldIstioOverlay}
	case screenSettings:
		return []string{FieldDomain, FieldTLSCert, FieldTLSKey, FieldPullSecret, FieldHAReplicas, FieldGeneral}
	}
	return nil
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
