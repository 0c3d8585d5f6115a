# wasmpipe on Google Cloud (GKE) with Confluent Cloud Kafka.
#
# What this creates
#   gke.tf        a VPC network and node subnetwork (secondary ranges for Pods
#                 and Services, flow logs, Private Google Access), Cloud NAT so
#                 private nodes reach Confluent Cloud and ghcr.io, a logged
#                 deny-all ingress firewall rule, a node service account with
#                 roles/container.defaultNodeServiceAccount only, a regional
#                 private GKE cluster (release channel, Workload Identity pool
#                 PROJECT.svc.id.goog, shielded nodes, network policy, master
#                 authorized networks, Binary Authorization, the default node
#                 pool removed) and one node pool (shielded VMs with secure
#                 boot, GKE metadata server, auto-repair and auto-upgrade).
#   confluent.tf  a Confluent Cloud environment, a Standard or Dedicated Kafka
#                 cluster in the same region, the input, output and
#                 dead-letter topics, and two service accounts: a
#                 Terraform-only admin (CloudClusterAdmin, whose Kafka API key
#                 configures the provider alias that manages the topics and
#                 ACLs) and wasmpipe's own, whose Kafka API key has only the
#                 ACLs the pipeline needs.
#   outputs.tf    what the overlay k8s/overlays/gke-confluent needs:
#                 bootstrap servers, the API key and secret, partitions.
#
# Variables (variables.tf; copy terraform.tfvars.example to terraform.tfvars)
#   Required: project_id, master_authorized_networks; Confluent Cloud API
#   credentials through confluent_cloud_api_key/secret or the environment
#   (CONFLUENT_CLOUD_API_KEY, CONFLUENT_CLOUD_API_SECRET). Google credentials
#   come from Application Default Credentials.
#   GKE: region (europe-west1), name (wasmpipe), labels, subnet_cidr,
#   pods_cidr, services_cidr, master_ipv4_cidr_block, rbac_security_group
#   (Google Groups for RBAC, off), release_channel (REGULAR), machine_type
#   (e2-standard-4), node_count (1 per zone), node_locations,
#   node_disk_size_gb, deletion_protection (true).
#   Confluent: confluent_environment_name, kafka_cluster_name,
#   kafka_cluster_type (standard | dedicated), kafka_availability
#   (MULTI_ZONE | SINGLE_ZONE), dedicated_cku.
#   Pipeline, matching the overlay's WASMPIPE_* settings: input_topic
#   (orders), output_topic (orders-clean), dead_letter_topic (orders-dlq),
#   partitions (6), topic_config, consumer_group (wasmpipe-orders), delivery
#   (exactly-once | at-least-once).
#
# Status: validated offline only (terraform fmt, HCL parsing, checkov); it has
# not been applied here, and `terraform validate` needs the providers'
# schemas from registry.terraform.io, which this project's build machine
# cannot reach. Run `terraform init && terraform plan` before relying on it.
#
# State holds the API secrets in plain text: use a remote backend with
# encryption and restricted access (e.g. a GCS bucket), configured with
# `terraform init -backend-config=...`.

provider "google" {
  project = var.project_id
  region  = var.region
}

# Cloud resources: environment, cluster, service accounts, API keys.
provider "confluent" {
  cloud_api_key    = var.confluent_cloud_api_key
  cloud_api_secret = var.confluent_cloud_api_secret
}

# Kafka resources (topics, ACLs), authenticated with the Terraform-only admin
# service account's Kafka API key, as Confluent's examples do.
provider "confluent" {
  alias = "kafka"

  cloud_api_key    = var.confluent_cloud_api_key
  cloud_api_secret = var.confluent_cloud_api_secret

  kafka_id            = confluent_kafka_cluster.wasmpipe.id
  kafka_rest_endpoint = confluent_kafka_cluster.wasmpipe.rest_endpoint
  kafka_api_key       = confluent_api_key.admin.id
  kafka_api_secret    = confluent_api_key.admin.secret
}

locals {
  labels = merge(
    {
      app        = "wasmpipe"
      managed-by = "terraform"
    },
    var.labels,
  )
}
