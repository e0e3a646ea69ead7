"""The Teams app package: manifest template, icons, schema validation, the package builder
(`manifest.package`) and publishing to the organization's catalog (`manifest.publish`).

The admin runs them as `switchboard-admin manifest build|check|publish` (see docs/install.md).
"""
