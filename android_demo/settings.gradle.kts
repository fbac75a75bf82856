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
        google()
        mavenCentral() // org.pytorch:pytorch_android_lite and its fbjni/soloader dependencies
    }
}

rootProject.name = "ShuffleNetDemo"
include(":app")
