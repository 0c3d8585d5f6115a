# These feed the overlay k8s/overlays/gke-confluent:
#
#   terraform output -raw get_credentials_command | sh   # kubectl context
#   terraform output -raw wasmpipe_brokers               # WASMPIPE_BROKERS in
#                                                        # the overlay's kustomization.yaml
#   terraform output -raw kafka_credentials_env > ../../overlays/gke-confluent/kafka-credentials.env
#     (the same as writing WASMPIPE_KAFKA_SASL_USERNAME=$(terraform output -raw
#     wasmpipe_api_key) and WASMPIPE_KAFKA_SASL_PASSWORD=$(terraform output
#     -raw wasmpipe_api_secret); that file is kept out of Git)
#   kubectl apply -k ../../overlays/gke-confluent
#
# then scale, or let the operator scale, the Deployment to `partitions`
# replicas. The overlay already sets SASL_SSL, PLAIN and exactly-once; keep
# WASMPIPE_GROUP/INPUT/OUTPUT/DLQ_TOPIC (k8s/base) equal to the variables.

output "gke_cluster_name" {
  description = "The GKE cluster's name."
  value       = google_container_cluster.wasmpipe.name
}

output "gke_cluster_location" {
  description = "The GKE cluster's region."
  value       = google_container_cluster.wasmpipe.location
}

output "get_credentials_command" {
  description = "Writes a kubeconfig entry for the cluster."
  value       = "gcloud container clusters get-credentials ${google_container_cluster.wasmpipe.name} --region ${google_container_cluster.wasmpipe.location} --project ${var.project_id}"
}

output "kafka_cluster_id" {
  description = "The Confluent Cloud Kafka cluster's id (lkc-...)."
  value       = confluent_kafka_cluster.wasmpipe.id
}

output "wasmpipe_brokers" {
  description = "Bootstrap servers for WASMPIPE_BROKERS: the cluster's bootstrap endpoint without its SASL_SSL:// prefix."
  value       = trimprefix(confluent_kafka_cluster.wasmpipe.bootstrap_endpoint, "SASL_SSL://")
}

output "wasmpipe_api_key" {
  description = "wasmpipe's Kafka API key: WASMPIPE_KAFKA_SASL_USERNAME."
  value       = confluent_api_key.wasmpipe.id
  sensitive   = true
}

output "wasmpipe_api_secret" {
  description = "wasmpipe's Kafka API secret: WASMPIPE_KAFKA_SASL_PASSWORD."
  value       = confluent_api_key.wasmpipe.secret
  sensitive   = true
}

output "kafka_credentials_env" {
  description = "The overlay's kafka-credentials.env, filled in."
  value       = <<-EOT
    WASMPIPE_KAFKA_SASL_USERNAME=${confluent_api_key.wasmpipe.id}
    WASMPIPE_KAFKA_SASL_PASSWORD=${confluent_api_key.wasmpipe.secret}
  EOT
  sensitive   = true
}

output "partitions" {
  description = "Partitions of the input topic: the Deployment's replica count."
  value       = var.partitions
}

output "topics" {
  description = "The topics created, by role."
  value       = { for k, t in confluent_kafka_topic.pipeline : k => t.topic_name }
}
