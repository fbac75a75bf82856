// Android Gradle Plugin 8.2 needs Gradle 8.2+ and JDK 17; Kotlin 1.9.22 is supported by AGP 8.2.
plugins {
    id("com.android.application") version "8.2.2" apply false
    id("org.jetbrains.kotlin.android") version "1.9.22" apply false
}
