# ---------------------------------------------------------------------------
# Google Cloud
# ---------------------------------------------------------------------------

variable "project_id" {
  description = "Google Cloud project that holds the network and the GKE cluster."
  type        = string
}

variable "region" {
  description = "Google Cloud region of the GKE cluster; the Confluent Cloud Kafka cluster is created in the same region (Confluent's GCP region names are Google's)."
  type        = string
  default     = "europe-west1"
}

variable "name" {
  description = "Prefix of every resource's name (network, cluster, node pool, service accounts)."
  type        = string
  default     = "wasmpipe"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,16}[a-z0-9]$", var.name))
    error_message = "name must be 3-18 lowercase letters, digits or hyphens, starting with a letter (it prefixes a 30-character service account id)."
  }
}

variable "labels" {
  description = "Labels added to the GKE cluster and its nodes."
  type        = map(string)
  default     = {}
}

variable "subnet_cidr" {
  description = "Primary range of the node subnetwork."
  type        = string
  default     = "10.10.0.0/20"
}

variable "pods_cidr" {
  description = "Secondary range for Pod IPs (VPC-native cluster)."
  type        = string
  default     = "10.20.0.0/14"
}

variable "services_cidr" {
  description = "Secondary range for Service IPs."
  type        = string
  default     = "10.24.0.0/20"
}

variable "master_ipv4_cidr_block" {
  description = "The /28 the GKE control plane's private endpoint uses; must not overlap the ranges above."
  type        = string
  default     = "172.16.0.0/28"
}

variable "master_authorized_networks" {
  description = "CIDR blocks allowed to reach the GKE control plane's public endpoint (kubectl, CI). No default: name your office, VPN or CI egress ranges."
  type = list(object({
    cidr_block   = string
    display_name = string
  }))

  validation {
    condition     = alltrue([for n in var.master_authorized_networks : n.cidr_block != "0.0.0.0/0"])
    error_message = "0.0.0.0/0 would open the control plane to the internet; list narrower ranges."
  }
}

variable "rbac_security_group" {
  description = "Google Groups for RBAC: gke-security-groups@YOUR-DOMAIN (needs Google Workspace or Cloud Identity). Null leaves it off."
  type        = string
  default     = null
}

variable "release_channel" {
  description = "GKE release channel: RAPID, REGULAR or STABLE."
  type        = string
  default     = "REGULAR"

  validation {
    condition     = contains(["RAPID", "REGULAR", "STABLE"], var.release_channel)
    error_message = "release_channel must be RAPID, REGULAR or STABLE."
  }
}

variable "machine_type" {
  description = "Machine type of the wasmpipe node pool. Each wasmpipe pod requests 500m CPU and 512Mi memory (k8s/base/deployment.yaml)."
  type        = string
  default     = "e2-standard-4"
}

variable "node_count" {
  description = "Nodes per zone in the node pool (a regional cluster spreads the pool over the region's zones, usually three)."
  type        = number
  default     = 1

  validation {
    condition     = var.node_count >= 1
    error_message = "node_count must be at least 1."
  }
}

variable "node_locations" {
  description = "Zones of the node pool; empty means GKE's default zones of the region."
  type        = list(string)
  default     = []
}

variable "node_disk_size_gb" {
  description = "Boot disk size of each node, in GB."
  type        = number
  default     = 50
}

variable "deletion_protection" {
  description = "Refuse to destroy the GKE cluster while true (the provider's default). Set false before `terraform destroy`."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------
# Confluent Cloud
# ---------------------------------------------------------------------------

variable "confluent_cloud_api_key" {
  description = "Confluent Cloud API key (a Cloud resource management key, not a Kafka key). Null reads CONFLUENT_CLOUD_API_KEY."
  type        = string
  default     = null
  sensitive   = true
}

variable "confluent_cloud_api_secret" {
  description = "Confluent Cloud API secret. Null reads CONFLUENT_CLOUD_API_SECRET."
  type        = string
  default     = null
  sensitive   = true
}

variable "confluent_environment_name" {
  description = "Display name of the Confluent Cloud environment created for wasmpipe."
  type        = string
  default     = "wasmpipe"
}

variable "kafka_cluster_name" {
  description = "Display name of the Confluent Cloud Kafka cluster."
  type        = string
  default     = "wasmpipe"
}

variable "kafka_cluster_type" {
  description = "Confluent Cloud cluster type: standard or dedicated. Both support Kafka transactions and ACLs."
  type        = string
  default     = "standard"

  validation {
    condition     = contains(["standard", "dedicated"], var.kafka_cluster_type)
    error_message = "kafka_cluster_type must be standard or dedicated."
  }
}

variable "kafka_availability" {
  description = "SINGLE_ZONE or MULTI_ZONE. MULTI_ZONE matches the regional GKE cluster's failure domain; a MULTI_ZONE dedicated cluster needs 2 CKUs or more."
  type        = string
  default     = "MULTI_ZONE"

  validation {
    condition     = contains(["SINGLE_ZONE", "MULTI_ZONE"], var.kafka_availability)
    error_message = "kafka_availability must be SINGLE_ZONE or MULTI_ZONE."
  }
}

variable "dedicated_cku" {
  description = "CKUs of a dedicated cluster (ignored for standard): at least 1 for SINGLE_ZONE, 2 for MULTI_ZONE."
  type        = number
  default     = 2

  validation {
    condition     = var.dedicated_cku >= 1
    error_message = "dedicated_cku must be at least 1."
  }
}

# ---------------------------------------------------------------------------
# The pipeline (these must match the overlay's WASMPIPE_* settings)
# ---------------------------------------------------------------------------

variable "input_topic" {
  description = "WASMPIPE_INPUT_TOPIC."
  type        = string
  default     = "orders"
}

variable "output_topic" {
  description = "WASMPIPE_OUTPUT_TOPIC."
  type        = string
  default     = "orders-clean"
}

variable "dead_letter_topic" {
  description = "WASMPIPE_DLQ_TOPIC."
  type        = string
  default     = "orders-dlq"
}

variable "partitions" {
  description = "Partitions of each topic. The Deployment runs one replica per input partition."
  type        = number
  default     = 6

  validation {
    condition     = var.partitions >= 1
    error_message = "partitions must be at least 1."
  }
}

variable "topic_config" {
  description = "Topic configuration applied to the three topics (e.g. { \"retention.ms\" = \"604800000\" }); empty keeps Confluent Cloud's defaults."
  type        = map(string)
  default     = {}
}

variable "consumer_group" {
  description = "WASMPIPE_GROUP. The exactly-once transactional id is GROUP-HOSTNAME, so its ACL is the prefix \"GROUP-\"."
  type        = string
  default     = "wasmpipe-orders"
}

variable "delivery" {
  description = "WASMPIPE_DELIVERY: exactly-once adds the transactional-id and idempotent-write ACLs."
  type        = string
  default     = "exactly-once"

  validation {
    condition     = contains(["exactly-once", "at-least-once"], var.delivery)
    error_message = "delivery must be exactly-once or at-least-once."
  }
}
