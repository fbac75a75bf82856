pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google() // androidx, com.google.ai.edge.litert
        mavenCentral() // org.pytorch:executorch-android, org.pytorch:pytorch_android_lite, fbjni, soloader
    }
}

rootProject.name = "ShuffleNetDemo"
include(":app")
