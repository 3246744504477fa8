package main

import (
	"bytes"
	"os"
	"path/filepath"
	"text/template"
)

// krewManifest is the krew plugin manifest of kubectl-silentauth
// (https://krew.sigs.k8s.io/docs/developer-guide/plugin-manifest/): one
// platform per archive, each with the archive's download URL and sha256,
// which krew checks before it installs. krew has no license field; the
// description names it and LICENSE is installed with the plugin.
var krewManifest = template.Must(template.New("krew").Parse(`apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: silentauth
spec:
  version: {{.Version}}
  homepage: https://github.com/silentauth/silentauth
  shortDescription: Rotate silentauth signing keys and end user sessions
  description: |
    Manages silentauth, the ext_authz service for Envoy and Istio: lists,
    adds, activates, retires and rotates the signing keys in their
    Kubernetes Secret, and lists and revokes users' sessions through the
    session API. Licensed under the Apache License 2.0 (Apache-2.0).
  platforms:
{{- range .Archives}}
  - selector:
      matchLabels:
        os: {{.Platform.OS}}
        arch: {{.Platform.Arch}}
    uri: {{.URL}}
    sha256: {{.SHA256}}
    bin: kubectl-silentauth
    files:
      - from: kubectl-silentauth
        to: .
      - from: LICENSE
        to: .
{{- end}}
`))

// krewFile is the manifest's file name: krew wants the plugin's name.
const krewFile = "silentauth.yaml"

// writeKrewManifest writes dist/silentauth.yaml for the kubectl-silentauth
// archives.
func writeKrewManifest(o options, archives []archive) error {
	type entry struct {
		Platform    struct{ OS, Arch string }
		URL, SHA256 string
	}
	var entries []entry
	for _, a := range archives {
		if a.command != "kubectl-silentauth" {
			continue
		}
		e := entry{URL: o.baseURL + a.name(), SHA256: a.sha256}
		e.Platform.OS, e.Platform.Arch = a.platform.os, a.platform.arch
		entries = append(entries, e)
	}
	var buf bytes.Buffer
	err := krewManifest.Execute(&buf, struct {
		Version  string
		Archives []entry
	}{o.version, entries})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(o.dist, krewFile), buf.Bytes(), 0o644)
}
