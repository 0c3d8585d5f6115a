# The GKE side: network, NAT, node service account, cluster, node pool.

locals {
  pods_range     = "${var.name}-pods"
  services_range = "${var.name}-services"
}

resource "google_project_service" "apis" {
  for_each = toset([
    "binaryauthorization.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
  ])

  service = each.value
  # Other workloads in the project may use these APIs.
  disable_on_destroy = false
}

# ---------------------------------------------------------------------------
# Network
# ---------------------------------------------------------------------------

resource "google_compute_network" "wasmpipe" {
  name                    = "${var.name}-vpc"
  auto_create_subnetworks = false
  routing_mode            = "REGIONAL"

  depends_on = [google_project_service.apis]
}

resource "google_compute_subnetwork" "nodes" {
  name          = "${var.name}-nodes"
  region        = var.region
  network       = google_compute_network.wasmpipe.id
  ip_cidr_range = var.subnet_cidr

  # Nodes have no external IPs; Google APIs are reached privately.
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = local.pods_range
    ip_cidr_range = var.pods_cidr
  }

  secondary_ip_range {
    range_name    = local.services_range
    ip_cidr_range = var.services_cidr
  }

  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Private nodes reach Confluent Cloud's public endpoints (and ghcr.io for the
# image) through Cloud NAT. Its egress IPs are stable per region, so they can
# be put on a Confluent Cloud IP filter.
resource "google_compute_router" "nat" {
  name    = "${var.name}-nat"
  region  = var.region
  network = google_compute_network.wasmpipe.id
}

resource "google_compute_router_nat" "nat" {
  name                               = "${var.name}-nat"
  region                             = var.region
  router                             = google_compute_router.nat.name
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"

  subnetwork {
    name                    = google_compute_subnetwork.nodes.id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# An explicit, logged deny-all for ingress at the lowest priority: the same
# effect as the implied rule, but denied connection attempts show in Cloud
# Logging. GKE adds its own higher-priority allow rules (control plane to
# nodes, node to node, load balancer health checks).
resource "google_compute_firewall" "deny_all_ingress" {
  name      = "${var.name}-deny-all-ingress"
  network   = google_compute_network.wasmpipe.id
  direction = "INGRESS"
  priority  = 65534

  source_ranges = ["0.0.0.0/0"]

  deny {
    protocol = "all"
  }

  log_config {
    metadata = "EXCLUDE_ALL_METADATA"
  }
}

# ---------------------------------------------------------------------------
# Node service account: logging, monitoring and metadata only. wasmpipe calls
# no Google API; a workload that does should get its own Google service
# account through Workload Identity, not more roles here.
# ---------------------------------------------------------------------------

resource "google_service_account" "nodes" {
  account_id   = "${var.name}-gke-nodes"
  display_name = "wasmpipe GKE nodes (least privilege)"
}

resource "google_project_iam_member" "nodes" {
  project = var.project_id
  # Logs, metrics, metadata and autoscaling metrics: the role Google
  # recommends for custom node service accounts. Pulling from a private
  # Artifact Registry would need roles/artifactregistry.reader on that
  # repository (the default image is public on ghcr.io).
  role   = "roles/container.defaultNodeServiceAccount"
  member = "serviceAccount:${google_service_account.nodes.email}"
}

# ---------------------------------------------------------------------------
# Cluster
# ---------------------------------------------------------------------------

resource "google_container_cluster" "wasmpipe" {
  # Google Groups for RBAC needs a Workspace or Cloud Identity domain with a
  # gke-security-groups group; set var.rbac_security_group where one exists.
  # checkov:skip=CKV_GCP_65:needs a Google Workspace/Cloud Identity group, opt-in through var.rbac_security_group
  name     = var.name
  location = var.region # regional: the control plane and nodes span the region's zones

  network         = google_compute_network.wasmpipe.id
  subnetwork      = google_compute_subnetwork.nodes.id
  networking_mode = "VPC_NATIVE"

  ip_allocation_policy {
    cluster_secondary_range_name  = local.pods_range
    services_secondary_range_name = local.services_range
  }

  # The node pool is managed below; GKE needs one node for the default pool
  # while it creates the cluster, and then it is removed. node_config shapes
  # only that short-lived pool, so it never runs as the Compute Engine
  # default service account or without the metadata server; it is ignored
  # afterwards (see lifecycle), as GKE then reports the real pool's config.
  remove_default_node_pool = true
  initial_node_count       = 1

  node_config {
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }

  deletion_protection = var.deletion_protection
  resource_labels     = local.labels

  release_channel {
    channel = var.release_channel
  }

  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  private_cluster_config {
    enable_private_nodes = true
    # The public endpoint stays, limited to master_authorized_networks.
    enable_private_endpoint = false
    master_ipv4_cidr_block  = var.master_ipv4_cidr_block

    master_global_access_config {
      enabled = false
    }
  }

  master_authorized_networks_config {
    # Only the listed ranges, not every Google Cloud public IP.
    gcp_public_cidrs_access_enabled = false

    dynamic "cidr_blocks" {
      for_each = var.master_authorized_networks
      content {
        cidr_block   = cidr_blocks.value.cidr_block
        display_name = cidr_blocks.value.display_name
      }
    }
  }

  dynamic "authenticator_groups_config" {
    for_each = var.rbac_security_group == null ? [] : [var.rbac_security_group]
    content {
      security_group = authenticator_groups_config.value
    }
  }

  # Enforce the project's Binary Authorization policy (its default allows
  # every image; tighten it to attested or ghcr.io/wasmpipe/* images with
  # google_binary_authorization_policy).
  binary_authorization {
    evaluation_mode = "PROJECT_SINGLETON_POLICY_ENFORCE"
  }

  master_auth {
    client_certificate_config {
      issue_client_certificate = false
    }
  }

  enable_shielded_nodes       = true
  enable_legacy_abac          = false
  enable_intranode_visibility = true

  # Calico network policy: the namespace can be locked down with
  # NetworkPolicy objects (egress only to Kafka and DNS, ingress to the ops
  # port from Prometheus).
  network_policy {
    enabled  = true
    provider = "CALICO"
  }

  addons_config {
    network_policy_config {
      disabled = false
    }
  }

  logging_config {
    enable_components = ["SYSTEM_COMPONENTS", "WORKLOADS"]
  }

  monitoring_config {
    enable_components = ["SYSTEM_COMPONENTS"]

    # wasmpipe's /metrics can be scraped by Managed Service for Prometheus
    # (k8s/monitoring holds the rules and dashboard).
    managed_prometheus {
      enabled = true
    }
  }

  maintenance_policy {
    daily_maintenance_window {
      start_time = "03:00"
    }
  }

  lifecycle {
    ignore_changes = [node_config]
  }

  depends_on = [
    google_project_service.apis,
    google_project_iam_member.nodes,
  ]
}

resource "google_container_node_pool" "wasmpipe" {
  name     = "${var.name}-pool"
  location = var.region
  cluster  = google_container_cluster.wasmpipe.name

  # Per zone. Six wasmpipe pods at 500m CPU each fit on three e2-standard-4
  # nodes with room for a rolling update's extra pod.
  node_count     = var.node_count
  node_locations = length(var.node_locations) > 0 ? var.node_locations : null

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  upgrade_settings {
    max_surge       = 1
    max_unavailable = 0
  }

  node_config {
    machine_type = var.machine_type
    image_type   = "COS_CONTAINERD"
    disk_type    = "pd-balanced"
    disk_size_gb = var.node_disk_size_gb

    # Least privilege comes from the service account's roles; the broad
    # scope lets IAM decide, as Google recommends.
    service_account = google_service_account.nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]

    labels          = local.labels
    resource_labels = local.labels

    metadata = {
      disable-legacy-endpoints = "true"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    # Pods see the GKE metadata server (Workload Identity), not the node's
    # credentials.
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }
}
