package dev.sdeploy.demo

import android.content.Context
import dev.sdeploy.demo.core.Labels
import dev.sdeploy.demo.core.ModelInfo
import dev.sdeploy.demo.core.Sha256
import java.io.File
import java.io.FileInputStream
import java.io.FileNotFoundException
import java.io.FileOutputStream
import java.io.IOException

/**
 * What `sdeploy bundle --app android` put into the assets: model.json, the labels, the model
 * (copied to filesDir, because every engine loads from a file path) and selftest.json if any.
 */
class BundledModel(val info: ModelInfo, val labels: List<String>, val modelFile: File, val selftestJson: String?) {
    companion object {
        const val BUNDLE_HINT =
            "run `sdeploy bundle --app android --arch v2_x0_5` from the repository root, then rebuild the app"

        fun load(context: Context): BundledModel {
            val info = ModelInfo.parse(readAsset(context, "model.json"))
            val labels = Labels.parse(readAsset(context, info.labelsFile), info.numClasses, info.labelsFile)
            val selftest = info.selftestFile?.let { readAsset(context, it) }
            return BundledModel(info, labels, copyModel(context, info), selftest)
        }

        private fun readAsset(context: Context, name: String): String = try {
            context.assets.open(name).use { it.readBytes().toString(Charsets.UTF_8) }
        } catch (e: FileNotFoundException) {
            throw IOException("$name is not in the app's assets: $BUNDLE_HINT")
        }

        /** Copy the model asset once (named after its sha256) and check it against model.json, on every start. */
        private fun copyModel(context: Context, info: ModelInfo): File {
            val dir = File(context.filesDir, "models").apply { mkdirs() }
            val sha = info.sha256
            val target = File(dir, (sha?.take(16) ?: "unversioned") + "-" + info.modelFile)
            if (sha != null && target.isFile && FileInputStream(target).use { Sha256.hex(it) } == sha) return target
            dir.listFiles()?.forEach { it.delete() } // older bundles, or a damaged copy
            val tmp = File(dir, target.name + ".tmp")
            try {
                context.assets.open(info.modelFile).use { input -> FileOutputStream(tmp).use { input.copyTo(it) } }
            } catch (e: FileNotFoundException) {
                throw IOException("${info.modelFile} is not in the app's assets: $BUNDLE_HINT")
            }
            if (sha != null && FileInputStream(tmp).use { Sha256.hex(it) } != sha) {
                tmp.delete()
                throw IOException("${info.modelFile} does not match the sha256 in model.json: $BUNDLE_HINT")
            }
            if (!tmp.renameTo(target)) throw IOException("cannot write $target")
            return target
        }
    }
}
