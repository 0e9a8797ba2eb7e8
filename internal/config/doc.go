// Package config owns snapwarden's configuration: reading the YAML file and
// SNAPWARDEN_* environment (docs/configuration.md), the defaults, merging
// each customer's policy override over the default policy, and validation
// whose errors name the file and the key. Secret values never print.
package config
