# The Confluent Cloud side: environment, Kafka cluster, topics, and the two
# service accounts (Terraform's admin, wasmpipe's least-privilege one).

resource "confluent_environment" "wasmpipe" {
  display_name = var.confluent_environment_name
}

resource "confluent_kafka_cluster" "wasmpipe" {
  display_name = var.kafka_cluster_name
  availability = var.kafka_availability
  cloud        = "GCP"
  region       = var.region

  dynamic "standard" {
    for_each = var.kafka_cluster_type == "standard" ? [1] : []
    content {}
  }

  dynamic "dedicated" {
    for_each = var.kafka_cluster_type == "dedicated" ? [1] : []
    content {
      cku = var.dedicated_cku
    }
  }

  environment {
    id = confluent_environment.wasmpipe.id
  }

  # Confluent recommends prevent_destroy = true for production clusters;
  # it cannot come from a variable, so add it here when this is production.
  lifecycle {
    precondition {
      condition     = var.kafka_cluster_type != "dedicated" || var.kafka_availability == "SINGLE_ZONE" || var.dedicated_cku >= 2
      error_message = "A MULTI_ZONE dedicated cluster needs dedicated_cku >= 2."
    }
  }
}

# ---------------------------------------------------------------------------
# Terraform's admin: CloudClusterAdmin on this cluster only. Its Kafka API key
# configures the confluent.kafka provider alias (main.tf), which creates the
# topics and ACLs; nothing else uses it, and it never reaches Kubernetes.
# ---------------------------------------------------------------------------

resource "confluent_service_account" "admin" {
  display_name = "${var.name}-terraform-admin"
  description  = "Terraform: manages the topics and ACLs of Kafka cluster ${var.kafka_cluster_name}"
}

resource "confluent_role_binding" "admin_cluster_admin" {
  principal   = "User:${confluent_service_account.admin.id}"
  role_name   = "CloudClusterAdmin"
  crn_pattern = confluent_kafka_cluster.wasmpipe.rbac_crn
}

resource "confluent_api_key" "admin" {
  display_name = "${var.name}-terraform-admin-kafka"
  description  = "Kafka API key of ${confluent_service_account.admin.display_name}, used only by Terraform"

  owner {
    id          = confluent_service_account.admin.id
    api_version = confluent_service_account.admin.api_version
    kind        = confluent_service_account.admin.kind
  }

  managed_resource {
    id          = confluent_kafka_cluster.wasmpipe.id
    api_version = confluent_kafka_cluster.wasmpipe.api_version
    kind        = confluent_kafka_cluster.wasmpipe.kind

    environment {
      id = confluent_environment.wasmpipe.id
    }
  }

  # The role binding must exist before the key creates topics and ACLs.
  depends_on = [confluent_role_binding.admin_cluster_admin]
}

# ---------------------------------------------------------------------------
# Topics. The Deployment runs one replica per input partition; the output and
# dead-letter topics get as many so keys keep their spread.
# ---------------------------------------------------------------------------

locals {
  topics = {
    input       = var.input_topic
    output      = var.output_topic
    dead_letter = var.dead_letter_topic
  }
}

resource "confluent_kafka_topic" "pipeline" {
  provider = confluent.kafka
  for_each = local.topics

  topic_name       = each.value
  partitions_count = var.partitions
  config           = var.topic_config
}

# ---------------------------------------------------------------------------
# wasmpipe's service account and Kafka API key, with exactly the ACLs the
# pipeline uses and no role binding: read the input, write the output and
# dead letters, commit offsets in its group and, under exactly-once, run
# transactions under the id GROUP-HOSTNAME. No CREATE, ALTER or cluster-wide
# grant. (A plugin with keyed state would also need its changelog topic,
# GROUP-PLUGIN-changelog, which the host creates: add those ACLs, or create
# the topic here, before deploying such a plugin.)
# ---------------------------------------------------------------------------

resource "confluent_service_account" "wasmpipe" {
  display_name = "${var.name}-pipeline"
  description  = "wasmpipe: reads ${var.input_topic}, writes ${var.output_topic} and ${var.dead_letter_topic}"
}

resource "confluent_api_key" "wasmpipe" {
  display_name = "${var.name}-pipeline-kafka"
  description  = "Kafka API key of ${confluent_service_account.wasmpipe.display_name} (the wasmpipe-kafka Secret)"

  owner {
    id          = confluent_service_account.wasmpipe.id
    api_version = confluent_service_account.wasmpipe.api_version
    kind        = confluent_service_account.wasmpipe.kind
  }

  managed_resource {
    id          = confluent_kafka_cluster.wasmpipe.id
    api_version = confluent_kafka_cluster.wasmpipe.api_version
    kind        = confluent_kafka_cluster.wasmpipe.kind

    environment {
      id = confluent_environment.wasmpipe.id
    }
  }
}

locals {
  wasmpipe_acls = merge(
    {
      input_read = {
        resource_type = "TOPIC"
        resource_name = confluent_kafka_topic.pipeline["input"].topic_name
        pattern_type  = "LITERAL"
        operation     = "READ"
      }
      input_describe = {
        resource_type = "TOPIC"
        resource_name = confluent_kafka_topic.pipeline["input"].topic_name
        pattern_type  = "LITERAL"
        operation     = "DESCRIBE"
      }
      output_write = {
        resource_type = "TOPIC"
        resource_name = confluent_kafka_topic.pipeline["output"].topic_name
        pattern_type  = "LITERAL"
        operation     = "WRITE"
      }
      output_describe = {
        resource_type = "TOPIC"
        resource_name = confluent_kafka_topic.pipeline["output"].topic_name
        pattern_type  = "LITERAL"
        operation     = "DESCRIBE"
      }
      dead_letter_write = {
        resource_type = "TOPIC"
        resource_name = confluent_kafka_topic.pipeline["dead_letter"].topic_name
        pattern_type  = "LITERAL"
        operation     = "WRITE"
      }
      dead_letter_describe = {
        resource_type = "TOPIC"
        resource_name = confluent_kafka_topic.pipeline["dead_letter"].topic_name
        pattern_type  = "LITERAL"
        operation     = "DESCRIBE"
      }
      group_read = {
        resource_type = "GROUP"
        resource_name = var.consumer_group
        pattern_type  = "LITERAL"
        operation     = "READ"
      }
    },
    # Exactly-once: every pod's transactional id is GROUP-HOSTNAME (see
    # --transactional-id), hence the prefix. The producer is idempotent in
    # both modes; at-least-once relies on WRITE on the topics, which is
    # enough for idempotent producers on current brokers (KIP-679).
    {
      for k, v in {
        transactional_id_write = {
          resource_type = "TRANSACTIONAL_ID"
          resource_name = "${var.consumer_group}-"
          pattern_type  = "PREFIXED"
          operation     = "WRITE"
        }
        transactional_id_describe = {
          resource_type = "TRANSACTIONAL_ID"
          resource_name = "${var.consumer_group}-"
          pattern_type  = "PREFIXED"
          operation     = "DESCRIBE"
        }
        cluster_idempotent_write = {
          resource_type = "CLUSTER"
          resource_name = "kafka-cluster"
          pattern_type  = "LITERAL"
          operation     = "IDEMPOTENT_WRITE"
        }
      } : k => v if var.delivery == "exactly-once"
    },
  )
}

resource "confluent_kafka_acl" "wasmpipe" {
  provider = confluent.kafka
  for_each = local.wasmpipe_acls

  resource_type = each.value.resource_type
  resource_name = each.value.resource_name
  pattern_type  = each.value.pattern_type
  principal     = "User:${confluent_service_account.wasmpipe.id}"
  host          = "*"
  operation     = each.value.operation
  permission    = "ALLOW"
}
