// Toolchain (see README.md, "Versions"): Android Gradle Plugin 9.4.1, which needs Gradle 9.6+
// (gradle/wrapper/gradle-wrapper.properties) and JDK 17+ (Android Studio's bundled JDK 21 works).
// AGP 9 compiles Kotlin itself ("built-in Kotlin"), so there is no org.jetbrains.kotlin.android
// plugin; the Kotlin Gradle plugin on this classpath picks the Kotlin version (AGP alone would use 2.2.10).
buildscript {
    repositories {
        mavenCentral()
    }
    dependencies {
        classpath("org.jetbrains.kotlin:kotlin-gradle-plugin:2.4.21")
    }
}

plugins {
    id("com.android.application") version "9.4.1" apply false
}
